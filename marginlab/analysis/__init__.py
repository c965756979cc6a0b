"""Analysis on top of trained models and their margins, for the apps and the studies (headless: arrays in,
arrays out): hidden-layer views (:mod:`.representation`), neighbours, searches and saved selections
(:mod:`.selection`), and which margins a point edit leaves stale (:mod:`.editing`)."""
