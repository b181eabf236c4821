"""``.pt2`` AOTInductor packages: writing, running without AITune, and locating the libraries they need.

``export`` writes them from a tuned model (``save_pt2``), ``runtime`` runs them (``load_pt2``), ``package`` reads
and checks what an archive records, ``installed`` finds and loads the TensorRT runtime this machine has, ``engines``
reaches the TensorRT engines inside a loaded package and gives them runtime settings, and ``paths``
(``python -m aitune_trt_aot.pt2.paths``) prints where the libraries are for build systems. The package compile's
C++ speed-ups are ``object_reuse`` and ``wrapper_split`` (with ``compiler``).

``runtime``, ``package`` and ``installed`` import neither AITune nor ``torch_tensorrt``; ``export`` needs AITune and is
imported on demand.
"""
