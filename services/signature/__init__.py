"""Signature: verifies the digital signatures (ký số) on results and records them."""
