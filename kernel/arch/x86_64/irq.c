/*
 * irq: the 8259 PIC pair and the 8254 PIT.
 *
 * Firmware leaves the PICs programmed for its own vectors (OVMF uses
 * 0x68-0x6f), which would collide with nothing of ours but land on stubs
 * nobody claimed; they are re-initialised to 0x20-0x2f and every line is
 * masked except IRQ 0 (the PIT) and IRQ 2 (the cascade). The PIT ticks at a
 * fixed rate so that arch_idle() can halt the CPU instead of spinning, which
 * matters under emulation.
 *
 * Not every PC still delivers the PIT through the 8259 (some route only
 * through the I/O APIC, some gate the PIT off). arch_timer_start therefore
 * waits for two ticks with a TSC budget; without them it masks everything
 * again and the kernel polls with pause instead of halting.
 *
 * Spurious IRQ 7 and 15 are recognised through the in-service register and
 * not acknowledged (a spurious IRQ 15 still needs an EOI to the master).
 */
#include <stdbool.h>
#include <stdint.h>

#include <arch/cpu.h>
#include <arch/irq.h>
#include <arch/trap.h>

#define PIC1_CMD       0x20
#define PIC1_DATA      0x21
#define PIC2_CMD       0xa0
#define PIC2_DATA      0xa1
#define PIC_EOI        0x20
#define PIC_READ_ISR   0x0b
#define ICW1_INIT_ICW4 0x11
#define ICW4_8086      0x01

#define PIT_CHANNEL0      0x40
#define PIT_COMMAND       0x43
#define PIT_CH0_RATE_LOHI 0x34 /* channel 0, lobyte/hibyte, mode 2 (rate generator) */
#define PIT_HZ            1193182u

#define IRQ_TIMER   0
#define IRQ_CASCADE 2

static volatile uint64_t ticks;
static bool timer_on;
static void (*line_handlers[16])(void); /* arch_irq_enable's handlers */

static void pic_mask_all(void)
{
    arch_outb(PIC1_DATA, 0xff);
    arch_outb(PIC2_DATA, 0xff);
}

static void pic_remap(void)
{
    arch_outb(PIC1_CMD, ICW1_INIT_ICW4);
    arch_io_wait();
    arch_outb(PIC2_CMD, ICW1_INIT_ICW4);
    arch_io_wait();
    arch_outb(PIC1_DATA, IRQ_VECTOR_BASE);
    arch_io_wait();
    arch_outb(PIC2_DATA, IRQ_VECTOR_BASE + 8);
    arch_io_wait();
    arch_outb(PIC1_DATA, 1u << IRQ_CASCADE); /* the slave sits on IRQ 2 */
    arch_io_wait();
    arch_outb(PIC2_DATA, IRQ_CASCADE); /* its cascade identity */
    arch_io_wait();
    arch_outb(PIC1_DATA, ICW4_8086);
    arch_io_wait();
    arch_outb(PIC2_DATA, ICW4_8086);
    arch_io_wait();
    pic_mask_all();
}

static bool pic_in_service(uint16_t cmd_port, unsigned line)
{
    arch_outb(cmd_port, PIC_READ_ISR);
    return (arch_inb(cmd_port) >> line) & 1;
}

static void irq_timer(struct trap_frame *f)
{
    (void)f;
    ticks++;
    arch_outb(PIC1_CMD, PIC_EOI);
}

static void irq_spurious_master(struct trap_frame *f)
{
    (void)f;
    if (pic_in_service(PIC1_CMD, 7))
        arch_outb(PIC1_CMD, PIC_EOI); /* a real IRQ 7 (masked, so unexpected) */
}

static void irq_spurious_slave(struct trap_frame *f)
{
    (void)f;
    if (pic_in_service(PIC2_CMD, 7))
        arch_outb(PIC2_CMD, PIC_EOI);
    arch_outb(PIC1_CMD, PIC_EOI); /* the master saw IRQ 2 either way */
}

/* Every line enabled by arch_irq_enable: its handler, then the EOI (to both PICs above 7). */
static void irq_line(struct trap_frame *f)
{
    unsigned line = (unsigned)(f->vector - IRQ_VECTOR_BASE) & 15;
    if (line_handlers[line])
        line_handlers[line]();
    if (line >= 8)
        arch_outb(PIC2_CMD, PIC_EOI);
    arch_outb(PIC1_CMD, PIC_EOI);
}

bool arch_irq_enable(unsigned line, void (*handler)(void))
{
    if (!timer_on || line == IRQ_TIMER || line == IRQ_CASCADE || line > 15 || !handler)
        return false;
    line_handlers[line] = handler;
    arch_trap_set_handler((uint8_t)(IRQ_VECTOR_BASE + line), irq_line);
    uint16_t port = line < 8 ? PIC1_DATA : PIC2_DATA;
    arch_outb(port, arch_inb(port) & (uint8_t) ~(1u << (line & 7)));
    return true;
}

bool arch_timer_start(uint32_t hz, uint64_t tsc_budget)
{
    arch_trap_set_handler(IRQ_VECTOR_BASE + IRQ_TIMER, irq_timer);
    arch_trap_set_handler(IRQ_VECTOR_BASE + 7, irq_spurious_master);
    arch_trap_set_handler(IRQ_VECTOR_BASE + 15, irq_spurious_slave);
    pic_remap();

    uint32_t divisor = PIT_HZ / (hz ? hz : 100);
    if (divisor == 0 || divisor > 0xffff)
        divisor = 0xffff;
    arch_outb(PIT_COMMAND, PIT_CH0_RATE_LOHI);
    arch_outb(PIT_CHANNEL0, (uint8_t)divisor);
    arch_outb(PIT_CHANNEL0, (uint8_t)(divisor >> 8));
    arch_outb(PIC1_DATA, (uint8_t) ~((1u << IRQ_TIMER) | (1u << IRQ_CASCADE)));

    uint64_t start = arch_rdtsc();
    arch_sti();
    while (ticks < 2 && arch_rdtsc() - start < tsc_budget)
        arch_pause();
    arch_cli();
    timer_on = ticks >= 2;
    if (!timer_on)
        pic_mask_all();
    return timer_on;
}

uint64_t arch_timer_ticks(void)
{
    return ticks;
}

void arch_idle(void)
{
    if (timer_on)
        __asm__ volatile("sti; hlt; cli" ::: "memory"); /* sti's shadow covers the hlt */
    else
        arch_pause();
}
