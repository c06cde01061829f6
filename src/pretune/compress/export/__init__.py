"""`export`: a torch classifier to ONNX, checked in ONNX Runtime against the torch logits; one
module per input kind (text.py, image.py) over a shared prologue and check (onnx.py)."""
