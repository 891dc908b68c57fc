/* hps version and the mark of the public API.
 *
 * HPS_VERSION_* name the release of these headers; the shared library's
 * soname changes with HPS_VERSION_MAJOR (libhps.so.0 for 0.x). The
 * Makefile reads the numbers from this file, so they are set here only. */
#ifndef HPS_VERSION_H
#define HPS_VERSION_H

#define HPS_VERSION_MAJOR 0
#define HPS_VERSION_MINOR 1
#define HPS_VERSION_PATCH 0
#define HPS_VERSION_STRING "0.1.0"

/* libhps is built with -fvisibility=hidden: only functions marked HPS_API
 * are exported from libhps.so; the internal hpsi_ ones stay inside. */
#if defined(__GNUC__) || defined(__clang__)
#define HPS_API __attribute__((visibility("default")))
#else
#define HPS_API
#endif

#endif
