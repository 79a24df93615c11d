"""swerl scaffold: OpenHands-SDK with an image-mounted runtime."""
