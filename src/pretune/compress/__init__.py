"""Compression: a tree of steps over a run, each node a new Run, every node measured the same way.

    tree.py      the command: chains -> a tree of nodes, reuse of finished nodes, the table
    choice.py    ratios, the choice on validation, the Pareto front and plot
    base.py      what a step is (formats taken and given, settings, check) and @register
    steps.py     the steps, registered per input kind (text, image): lookup and the chain check
    loaded.py    a run loaded once (recipe, task, data read once per command, preprocessor, model)
    variant.py   how a step writes its variant (fit's layout) and scores it
    measure.py   size, parameters, latency, throughput, peak memory (a fresh process), accuracy
    quantize/    text.py, image.py over gate.py (ONNX Runtime int8 and the accuracy gate)
    prune/       heads.py, magnitude.py (text), channels.py (image) over recover.py
    distill/     text.py, image.py over loss.py (the loss, the cached teacher pass)
    export/      text.py, image.py over onnx.py (trace and check); fusions.py
    trim_vocab.py  text only
"""
