#ifndef NB_SYSCOUNT_H
#define NB_SYSCOUNT_H

/* Counts the system calls of one process (all its current threads). */
typedef struct nb_syscount nb_syscount;

nb_syscount *nb_syscount_open(int pid);      /* NULL: not countable here (see below) */
long long nb_syscount_read(const nb_syscount *sc);   /* since open; -1 for NULL */
void nb_syscount_close(nb_syscount *sc);
const char *nb_syscount_error(void);         /* why counting failed, or NULL */

#endif
