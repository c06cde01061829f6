def prune_step(parent, cfg, out):
    raise NotImplementedError
