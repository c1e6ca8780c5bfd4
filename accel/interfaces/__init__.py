"""Unit interfaces: per unit, the facts every view of it shares (timing tables, closed-form costs, codes, widths)."""
