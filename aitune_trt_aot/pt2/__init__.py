"""``.pt2`` AOTInductor packages: writing, running without AITune, and locating the libraries they need.

``export`` writes them from a tuned model (``save_pt2``), ``runtime`` runs them (``load_pt2``), ``engines`` reaches the
TensorRT engines inside a loaded package and gives them runtime settings, and ``paths``
(``python -m aitune_trt_aot.pt2.paths``) prints where the libraries are for build systems.

``runtime`` imports neither AITune nor ``torch_tensorrt``; ``export`` needs AITune and is imported on demand.
"""
