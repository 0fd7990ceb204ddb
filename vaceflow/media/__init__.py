"""Media: find ffmpeg, probe files, and (media preparation) conform inputs to the contract."""
