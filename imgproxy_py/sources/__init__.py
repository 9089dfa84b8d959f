"""Where source images come from: one small fetch contract, one module per scheme."""
