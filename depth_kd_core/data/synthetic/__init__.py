"""The synthetic stereo world: scenes, textures, the ray-cast rig and its dataset."""
