/*
 * compiler: the few attributes every module uses, named once. Clang is the
 * one compiler (CMakeLists.txt refuses others), so there is no fallback.
 */
#ifndef CANOPY_COMPILER_H
#define CANOPY_COMPILER_H

/* A status the caller must look at: commands that can fail return one of these. */
#define MUST_CHECK __attribute__((warn_unused_result))

/* printf-style checking of a format argument (1-based positions). */
#define PRINTF_LIKE(fmt, first) __attribute__((format(printf, fmt, first)))

/* A small helper on a hot path that must not become a call, whatever the inliner decides. */
#define ALWAYS_INLINE inline __attribute__((always_inline))

#endif
