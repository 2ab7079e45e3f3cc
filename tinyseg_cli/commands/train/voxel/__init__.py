"""3D training: tiles of a voxel table through the sparse U-Net."""
