"""The implementation of bitsandbytes.functional, one module per concern; import from the facade."""
