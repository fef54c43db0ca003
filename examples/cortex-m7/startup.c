/* Start-up for the MPS2 AN500 board (Cortex-M7) under QEMU: a vector table holding the initial
   stack pointer and the reset handler, which turns the FPU on and hands over to newlib's _start
   (rdimon's crt0: zeroes .bss, sets up semihosting, runs constructors, calls main, exits). */
#include <stdint.h>

extern void _start(void);
extern uint32_t __stack;

void Reset_Handler(void);
void Default_Handler(void);

__attribute__((noreturn)) void Reset_Handler(void) {
  /* CPACR: full access to coprocessors 10 and 11 (the FPU) before any floating-point instruction. */
  volatile uint32_t* cpacr = (volatile uint32_t*)0xE000ED88u;
  *cpacr |= 0xFu << 20;
  __asm__ volatile("dsb\n\tisb" ::: "memory");
  _start();
  for (;;) {}
}

/* A fault prints nothing through semihosting by itself: stop with a breakpoint QEMU reports. */
void Default_Handler(void) {
  for (;;) __asm__ volatile("bkpt #0");
}

__attribute__((section(".vectors"), used)) static void (*const vectors[16])(void) = {
    (void (*)(void))(&__stack), Reset_Handler,  Default_Handler, Default_Handler,
    Default_Handler,            Default_Handler, Default_Handler, 0, 0, 0, 0,
    Default_Handler,            Default_Handler, 0,               Default_Handler, Default_Handler,
};
