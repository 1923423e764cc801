"""Adapters that run the MoE kernels of other projects under moefuzz (exec protocol)."""
