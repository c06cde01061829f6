"""`quantize`: int8 weights and activations, one module per input kind (text.py, image.py) over
one accuracy gate and one ONNX Runtime int8 path (gate.py)."""
