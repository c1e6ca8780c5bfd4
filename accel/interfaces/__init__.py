"""Unit interfaces: the ground floor that rtl/, emulator/ and the equivalence harness all import."""
