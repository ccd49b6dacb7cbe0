"""Unit 4: phase retrieval (Fourier tools, ER/HIO/RAAR, PR-DAD)."""
