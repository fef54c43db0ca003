/* Start-up for the MPS2 AN500 (Cortex-M7) and AN386 (Cortex-M4) boards under QEMU: a vector table
   holding the initial stack pointer, the reset handler, which turns the FPU on and hands over to
   newlib's _start (rdimon's crt0: zeroes .bss, sets up semihosting, runs constructors, calls main,
   exits), and a SysTick handler that counts the counter's wraps (main.cpp's instruction count). */
#include <stdint.h>

extern void _start(void);
extern uint32_t __stack;

void Reset_Handler(void);
void Default_Handler(void);
void SysTick_Handler(void);

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

volatile uint32_t systick_wraps;
void SysTick_Handler(void) { ++systick_wraps; }

__attribute__((section(".vectors"), used)) static void (*const vectors[16])(void) = {
    (void (*)(void))(&__stack), Reset_Handler,  Default_Handler, Default_Handler,
    Default_Handler,            Default_Handler, Default_Handler, 0, 0, 0, 0,
    Default_Handler,            Default_Handler, 0,               Default_Handler, SysTick_Handler,
};
