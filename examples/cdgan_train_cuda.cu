// cdgan-train built by nvcc: the same trainer with --device cuda available (see cdgan_train.cpp).
#include "cdgan_train.cpp"
