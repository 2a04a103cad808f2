/*
 * CRuntime.S - the C library symbols Embedded Swift calls that are better not written in Swift.
 *
 * memset, memcpy, memmove, memcmp and strlen are written in assembly on purpose: the same
 * loops in Swift would be recognised by LLVM as memset/memcpy idioms and compiled into calls
 * to themselves. memset and memcpy move eight bytes per iteration (`rep stosq`/`rep movsq`,
 * then the last 0-7 bytes one by one): QEMU's TCG runs each iteration of a `rep` string
 * instruction as one guest instruction, so zeroing a page with `rep stosb` cost 4,096 of them
 * and about 4,100 of a zero-fill fault's 6,250 (`bench=fault`: 6,251 before, 2,664 after).
 * memmove's forward copy does the same; its backward one (rare) stays byte by byte. No SSE,
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
    movzbl  %sil, %eax
    mov     $0x0101010101010101, %r8
    imul    %r8, %rax                   /* the byte in all eight */
    mov     %rdx, %rcx
    shr     $3, %rcx
    rep stosq
    mov     %rdx, %rcx
    and     $7, %ecx
    rep stosb
    mov     %r9, %rax
    ret

    /* void *memcpy(void *dst, const void *src, size_t count) */
    .global memcpy
    .type memcpy, @function
memcpy:
    mov     %rdi, %rax
    mov     %rdx, %rcx
    shr     $3, %rcx
    rep movsq
    mov     %rdx, %rcx
    and     $7, %ecx
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
1:  shr     $3, %rcx                    /* forward: eight bytes at a time, as memcpy */
    rep movsq
    mov     %rdx, %rcx
    and     $7, %ecx
    rep movsb
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
