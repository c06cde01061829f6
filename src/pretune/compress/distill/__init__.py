"""`distill`: train a smaller student on the teacher run's data through the public `fit`; one
module per input kind (text.py: layer surgery of the teacher, or any text model; image.py: any
image model) over the shared loss, cached teacher pass and hidden-state matching (loss.py)."""
