"""Identity service: Japanese normalisation of the 基本4情報 and record linkage between platforms."""
