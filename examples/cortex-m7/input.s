/* The example's input image (input.bin, 1x3x32x32 float32), linked in as read-only data.
   Assembled with -Wa,-I,MODEL_DIR so that .incbin finds it. */
  .section .rodata.vitcc_example_input,"a"
  .balign 64
  .global vitcc_example_input
  .type vitcc_example_input, %object
vitcc_example_input:
  .incbin "input.bin"
  .size vitcc_example_input, . - vitcc_example_input
