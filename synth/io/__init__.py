"""Reading and writing datasets: trainer formats, the dataset card, plots."""
