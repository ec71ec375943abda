"""The scheduler: fires due schedules through the atomic claim, and reaps runs whose connector went silent."""
