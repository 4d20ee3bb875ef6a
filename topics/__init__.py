"""Contracts: every topic and record oO reads or writes, declared once."""
