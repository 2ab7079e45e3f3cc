"""2D training: patches of a split manifest's images, validated on whole val images."""
