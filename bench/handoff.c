
/*
 * nginx mod_wsgi benchmarks: the floor of a thread pool round on one CPU.
 *
 * Two threads pinned to the CPU given as the first argument take turns
 * through two semaphores, as the event loop and a runner do: one posts,
 * the other wakes, posts back and sleeps again.  Prints the median, over
 * a few batches, of the microseconds one round trip took (two wake-ups,
 * two context switches).
 */


#define _GNU_SOURCE

#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>


#define HANDOFF_ROUNDS   50000
#define HANDOFF_BATCHES  7


static sem_t  there, back;


static void *
handoff_peer(void *data)
{
    int  i;

    (void) data;

    for (i = 0; i < HANDOFF_ROUNDS * HANDOFF_BATCHES; i++) {
        sem_wait(&there);
        sem_post(&back);
    }

    return NULL;
}


static int
handoff_compare(const void *a, const void *b)
{
    double  x = *(const double *) a, y = *(const double *) b;

    return (x > y) - (x < y);
}


int
main(int argc, char **argv)
{
    int              i, b, cpu;
    double           us[HANDOFF_BATCHES];
    pthread_t        peer;
    cpu_set_t        set;
    struct timespec  t0, t1;

    cpu = (argc > 1) ? atoi(argv[1]) : 0;

    CPU_ZERO(&set);
    CPU_SET(cpu, &set);

    if (sched_setaffinity(0, sizeof(set), &set) != 0) {
        perror("sched_setaffinity");
        return 1;
    }

    if (sem_init(&there, 0, 0) != 0 || sem_init(&back, 0, 0) != 0) {
        perror("sem_init");
        return 1;
    }

    /* the new thread inherits the affinity */

    if (pthread_create(&peer, NULL, handoff_peer, NULL) != 0) {
        fprintf(stderr, "pthread_create failed\n");
        return 1;
    }

    for (b = 0; b < HANDOFF_BATCHES; b++) {
        clock_gettime(CLOCK_MONOTONIC, &t0);

        for (i = 0; i < HANDOFF_ROUNDS; i++) {
            sem_post(&there);
            sem_wait(&back);
        }

        clock_gettime(CLOCK_MONOTONIC, &t1);

        us[b] = ((t1.tv_sec - t0.tv_sec) * 1e9
                 + (t1.tv_nsec - t0.tv_nsec)) / HANDOFF_ROUNDS / 1000;
    }

    pthread_join(peer, NULL);

    qsort(us, HANDOFF_BATCHES, sizeof(double), handoff_compare);

    printf("%.3f\n", us[HANDOFF_BATCHES / 2]);

    return 0;
}
