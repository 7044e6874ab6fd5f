"""Quantization: linear and fixed-point arithmetic, the integer model, its converter and interpreter."""
