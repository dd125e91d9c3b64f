/*
 * LD_PRELOAD shim that lets Debian's user-mode-linux 6.1 run on hosts whose CPU has
 * a large XSAVE area (AVX-512, AMX).
 *
 * UML saves and restores each guest process's FPU state with
 * PTRACE_GETREGSET/PTRACE_SETREGSET(NT_X86_XSTATE) using its own 832-byte buffer
 * (legacy area + header + AVX). The host kernel accepts a short GETREGSET but
 * refuses a SETREGSET whose size is not the full user XSAVE size (EFAULT), and UML
 * then kills the guest ("ptrace set fp regs failed, errno = 14").
 *
 * The fix here: for a short SETREGSET, read the tracee's full current state, lay
 * UML's prefix over it and write the full size back. The standard-format XSAVE
 * layout puts UML's 832 bytes first, so the components UML does not know about
 * (AVX-512, AMX) keep the tracee's current values.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdarg.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/types.h>
#include <sys/uio.h>

#ifndef NT_X86_XSTATE
#define NT_X86_XSTATE 0x202
#endif

typedef long (*ptrace_fn)(enum __ptrace_request, ...);

/* UML is single-threaded on the host side, so one scratch buffer is enough. */
static unsigned char full_state[65536] __attribute__((aligned(64)));

long ptrace(enum __ptrace_request request, ...)
{
    static ptrace_fn real_ptrace;
    va_list args;
    va_start(args, request);
    pid_t pid = va_arg(args, pid_t);
    void *addr = va_arg(args, void *);
    void *data = va_arg(args, void *);
    va_end(args);
    if (real_ptrace == NULL)
        real_ptrace = (ptrace_fn)dlsym(RTLD_NEXT, "ptrace");
    if (request == PTRACE_SETREGSET && (long)addr == NT_X86_XSTATE) {
        struct iovec *given = data;
        struct iovec whole = { full_state, sizeof(full_state) };
        if (real_ptrace(PTRACE_GETREGSET, pid, addr, &whole) < 0)
            return -1;
        if (given->iov_len < whole.iov_len) {
            memcpy(full_state, given->iov_base, given->iov_len);
            return real_ptrace(PTRACE_SETREGSET, pid, addr, &whole);
        }
    }
    return real_ptrace(request, pid, addr, data);
}
