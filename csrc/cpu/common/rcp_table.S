/* Embeds data/rcp_approx_f32_delta.bin as the read-only symbol
   bnb_rcp_approx_delta_table (see rcp_approx.h). */
#if defined(__APPLE__)
    .const
    .globl _bnb_rcp_approx_delta_table
    .p2align 6
_bnb_rcp_approx_delta_table:
#else
    .section .rodata
    .globl bnb_rcp_approx_delta_table
    .hidden bnb_rcp_approx_delta_table
    .type bnb_rcp_approx_delta_table, @object
    .p2align 6
bnb_rcp_approx_delta_table:
#endif
    .incbin BNB_RCP_TABLE_PATH
#if !defined(__APPLE__)
    .size bnb_rcp_approx_delta_table, . - bnb_rcp_approx_delta_table
    .section .note.GNU-stack,"",@progbits
#endif
