"""Word usage analytics: per-word measures over all uses of a word (APD, PRT, spread), and the
reproducible pair sampling of the pairs output. Free of engines, CLI and models: numpy, torch, pyarrow."""
