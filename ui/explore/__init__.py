"""The Explore page's drawing pieces: image sources, the concept and its WordNet neighbours, the map,
every method side by side, "what CLIP sees here", shareable links and downloads. Everything they
compute comes from `convis_core`'s public API (`ui.explore.compute` wraps it with caches)."""
