/* A tiny keyctl for a busybox container (tests/adversarial/test_outside_unprivileged.py): no libc,
 * so it runs in any container; the student pastes it into the exec box as base64.
 * kt add DESC DATA [RING] | id RING | link KEY RING | unlink KEY RING | search RING DESC | read KEY
 * | revoke KEY | setperm KEY PERM | clear RING; prints rc=<result or -errno>. */
typedef unsigned long u64;
static long sc(long n, long a, long b, long c, long d, long e) {
    long r; register long r10 asm("r10") = d; register long r8 asm("r8") = e;
    asm volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8) : "rcx", "r11", "memory");
    return r;
}
static int slen(const char *s) { int n = 0; while (s[n]) n++; return n; }
static void out(const char *s, int n) { sc(1, 1, (long)s, n, 0, 0); }
static void outs(const char *s) { out(s, slen(s)); }
static void outn(long v) { char b[24]; int i = 23; int neg = v < 0; unsigned long u = neg ? -v : v; b[i] = 0;
    do { b[--i] = '0' + u % 10; u /= 10; } while (u); if (neg) b[--i] = '-'; outs(b + i); }
static long num(const char *s) { long v = 0, sign = 1; if (*s == '-') { sign = -1; s++; }
    while (*s >= '0' && *s <= '9') v = v * 10 + (*s++ - '0'); return v * sign; }
static int eq(const char *a, const char *b) { while (*a && *a == *b) { a++; b++; } return *a == *b; }
#define NR_ADD_KEY 248
#define NR_KEYCTL 250
static char buf[65536];
void run(long argc, char **argv) {
    long r = -22;
    if (argc >= 4 && eq(argv[1], "add"))        /* add DESC DATA RING */
        r = sc(NR_ADD_KEY, (long)"user", (long)argv[2], (long)argv[3], slen(argv[3]), argc > 4 ? num(argv[4]) : -4);
    else if (argc >= 3 && eq(argv[1], "id"))    /* id RING */
        r = sc(NR_KEYCTL, 0, num(argv[2]), 0, 0, 0);
    else if (argc >= 4 && eq(argv[1], "link"))  /* link KEY RING */
        r = sc(NR_KEYCTL, 8, num(argv[2]), num(argv[3]), 0, 0);
    else if (argc >= 4 && eq(argv[1], "unlink"))
        r = sc(NR_KEYCTL, 9, num(argv[2]), num(argv[3]), 0, 0);
    else if (argc >= 4 && eq(argv[1], "search")) /* search RING DESC */
        r = sc(NR_KEYCTL, 10, num(argv[2]), (long)"user", (long)argv[3], 0);
    else if (argc >= 3 && eq(argv[1], "read")) { /* read KEY */
        r = sc(NR_KEYCTL, 11, num(argv[2]), (long)buf, sizeof buf - 1, 0);
        if (r > 0) { outs("data="); out(buf, r > (long)sizeof buf - 1 ? (long)sizeof buf - 1 : r); outs("\n"); }
    } else if (argc >= 3 && eq(argv[1], "revoke"))
        r = sc(NR_KEYCTL, 3, num(argv[2]), 0, 0, 0);
    else if (argc >= 3 && eq(argv[1], "clear"))
        r = sc(NR_KEYCTL, 7, num(argv[2]), 0, 0, 0);
    else if (argc >= 4 && eq(argv[1], "setperm"))
        r = sc(NR_KEYCTL, 5, num(argv[2]), num(argv[3]), 0, 0);
    outs("rc="); outn(r); outs("\n");
    sc(60, r < 0 ? 1 : 0, 0, 0, 0, 0);
}
asm(".globl _start\n_start:\n mov (%rsp), %rdi\n lea 8(%rsp), %rsi\n and $-16, %rsp\n call run\n");
