/*
 * CRuntime.S - the C library symbols Embedded Swift calls that are better not written in Swift.
 *
 * memset, memcpy, memmove, memcmp and strlen are written in assembly on purpose: the same
 * loops in Swift would be recognised by LLVM as memset/memcpy idioms and compiled into calls
 * to themselves. `rep movsb`/`rep stosb` are fast enough on every CPU QEMU emulates; no SSE,
 * which the kernel never enables. `free` is a jump to the Swift implementation
 * (kernel/Kern/Runtime.swift): Swift reserves that name and will not define it with @_cdecl.
 */
    .text
    .code64

    /* void *memset(void *dst, int value, size_t count) */
    .global memset
    .type memset, @function
memset:
    mov     %rdi, %r9
    mov     %esi, %eax
    mov     %rdx, %rcx
    rep stosb
    mov     %r9, %rax
    ret

    /* void *memcpy(void *dst, const void *src, size_t count) */
    .global memcpy
    .type memcpy, @function
memcpy:
    mov     %rdi, %rax
    mov     %rdx, %rcx
    rep movsb
    ret

    /* void *memmove(void *dst, const void *src, size_t count): copies backwards on overlap */
    .global memmove
    .type memmove, @function
memmove:
    mov     %rdi, %rax
    mov     %rdx, %rcx
    cmp     %rsi, %rdi
    jbe     1f                          /* dst <= src: a forward copy is safe */
    lea     -1(%rsi, %rcx), %rsi
    lea     -1(%rdi, %rcx), %rdi
    std
    rep movsb
    cld
    ret
1:  rep movsb
    ret

    /* int memcmp(const void *a, const void *b, size_t count) */
    .global memcmp
    .type memcmp, @function
memcmp:
    xor     %eax, %eax
    test    %rdx, %rdx
    jz      2f
1:  movzbl  (%rdi), %eax
    movzbl  (%rsi), %ecx
    sub     %ecx, %eax
    jnz     2f
    inc     %rdi
    inc     %rsi
    dec     %rdx
    jnz     1b
2:  ret

    /* size_t strlen(const char *s) - clang may emit calls to it for C string helpers */
    .global strlen
    .type strlen, @function
strlen:
    xor     %eax, %eax
1:  cmpb    $0, (%rdi, %rax)
    je      2f
    inc     %rax
    jmp     1b
2:  ret

    /* void free(void *pointer) */
    .global free
    .type free, @function
free:
    jmp     kernel_runtime_free
