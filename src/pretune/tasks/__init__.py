"""Tasks: one module per task (sequence / token classification, multi-label, regression) and their pure helpers."""
