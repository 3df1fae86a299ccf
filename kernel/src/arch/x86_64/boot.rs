//! The 32-bit Multiboot entry: check for long mode, build boot page tables
//! (identity map and the kernel's top-2-GiB window over the first GiB, with
//! 2 MiB pages), enable long mode and jump to [`crate::kstart`] on the boot
//! kernel stack. Everything after that is Rust.
//!
//! The Multiboot header uses the a.out-kludge address fields (flag bit 16):
//! QEMU's `-kernel` refuses to load a 64-bit ELF otherwise, and GRUB honours
//! the same fields, so both load the very same file.

use core::arch::global_asm;

/// Size of the boot kernel stack (also the first thread's kernel stack).
pub const BOOT_STACK_SIZE: usize = 64 * 1024;

#[repr(C, align(16))]
pub struct Stack(pub [u8; BOOT_STACK_SIZE]);

/// The stack `kstart` runs on.
#[no_mangle]
pub static mut BOOT_STACK: Stack = Stack([0; BOOT_STACK_SIZE]);

global_asm!(
    r#"
    .set MB_MAGIC, 0x1BADB002
    .set MB_FLAGS, (1 << 0) | (1 << 1) | (1 << 16)
    .set KERNEL_VMA, 0xFFFFFFFF80000000

    .section .multiboot, "a"
    .p2align 2
mb_header:
    .long MB_MAGIC
    .long MB_FLAGS
    .long -(MB_MAGIC + MB_FLAGS)
    .long mb_header
    .long __image_start_phys
    .long __load_end_phys
    .long __bss_end_phys
    .long _start32

    .section .boot.text, "ax"
    .code32
    .global _start32
_start32:
    cli
    cld
    mov %eax, %edi              /* Multiboot magic -> first argument */
    mov %ebx, %esi              /* info pointer    -> second argument */

    /* Long mode present? (CPUID 0x80000001 EDX bit 29) */
    mov $0x80000000, %eax
    cpuid
    cmp $0x80000001, %eax
    jb no_long_mode
    mov $0x80000001, %eax
    cpuid
    bt $29, %edx
    jnc no_long_mode

    /* PD: 512 x 2 MiB pages covering the first GiB. */
    mov $boot_pd, %ebx
    xor %ecx, %ecx
1:  mov %ecx, %eax
    shl $21, %eax
    or $0x83, %eax              /* present | writable | huge */
    mov %eax, (%ebx,%ecx,8)
    movl $0, 4(%ebx,%ecx,8)
    inc %ecx
    cmp $512, %ecx
    jne 1b

    mov $boot_pd, %eax
    or $3, %eax
    mov %eax, boot_pdpt_lo
    mov %eax, boot_pdpt_hi + 510 * 8
    mov $boot_pdpt_lo, %eax
    or $3, %eax
    mov %eax, boot_pml4
    mov $boot_pdpt_hi, %eax
    or $3, %eax
    mov %eax, boot_pml4 + 511 * 8

    mov $boot_pml4, %eax
    mov %eax, %cr3
    mov %cr4, %eax
    or $(1 << 5), %eax          /* PAE */
    mov %eax, %cr4
    mov $0xC0000080, %ecx       /* EFER: LME | NXE */
    rdmsr
    or $((1 << 8) | (1 << 11)), %eax
    wrmsr
    mov %cr0, %eax
    or $((1 << 31) | (1 << 16) | 1), %eax   /* PG | WP | PE */
    mov %eax, %cr0

    lgdt boot_gdt_ptr
    ljmp $0x08, $start64

no_long_mode:
    /* Say so on COM1 and stop. */
    mov $no_lm_msg, %esi
2:  lodsb
    test %al, %al
    jz 3f
    mov $0x3F8, %dx
    out %al, %dx
    jmp 2b
3:  hlt
    jmp 3b

    .code64
start64:
    mov $0x10, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    xor %ax, %ax
    mov %ax, %fs
    mov %ax, %gs
    movabs $BOOT_STACK + {stack_size}, %rsp
    xor %ebp, %ebp
    movabs $kstart, %rax
    call *%rax
4:  hlt
    jmp 4b

    .section .boot.data, "aw"
    .p2align 12
boot_pml4:    .skip 4096
boot_pdpt_lo: .skip 4096
boot_pdpt_hi: .skip 4096
boot_pd:      .skip 4096
boot_gdt:
    .quad 0
    .quad 0x00AF9A000000FFFF    /* 64-bit code */
    .quad 0x00CF92000000FFFF    /* data */
boot_gdt_ptr:
    .word 3 * 8 - 1
    .long boot_gdt
no_lm_msg:
    .asciz "prism: this CPU has no long mode (x86_64); stopping.\r\n"
    .text
"#,
    stack_size = const BOOT_STACK_SIZE,
    options(att_syntax)
);
