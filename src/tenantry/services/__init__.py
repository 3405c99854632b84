"""Control-plane services: each works on the catalog (and placements) through an admin connection."""
