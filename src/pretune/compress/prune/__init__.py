"""`prune`: structured pruning (text: attention heads and FFN neurons, heads.py; images:
convolution channels, channels.py) or unstructured magnitude pruning (text, magnitude.py), each
followed by the shared recovery fine-tuning (recover.py)."""
