"""The participant side: one page driven by `study.runtime.Runtime`'s current step."""
