/* version.h — the rxc version string. */
#ifndef RXC_VERSION_H
#define RXC_VERSION_H
#define RXC_VERSION "0.1.0"
#endif
