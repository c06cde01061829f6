def distill_step(parent, cfg, out):
    raise NotImplementedError
