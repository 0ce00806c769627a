/*
 * faultdemo: deliberate faults for the boot tests (`fault=KIND` on the
 * kernel command line; see core/faultdemo.c for the kinds).
 */
#ifndef KERNEL_FAULTDEMO_H
#define KERNEL_FAULTDEMO_H

/* Triggers the fault the command line names, if any; returns if it names none. */
void faultdemo_run(const char *cmdline);

#endif
