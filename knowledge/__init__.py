"""Knowledge base, routing table and router of Föreningslotsen."""
