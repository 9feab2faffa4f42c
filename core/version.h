#ifndef PK_VERSION_H
#define PK_VERSION_H
#define PROMPTKD_VERSION "0.1.0"
#endif
