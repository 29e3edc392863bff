// libFuzzer target: image bytes (JPEG, PNG, BMP or anything else) through decode_image, then through the
// timm eval transform (short-side resize, centre crop, normalise) as every decoded image is. An accepted image
// must be inside the decode budget and hold exactly width x height x 3 bytes; the preprocessed values must be
// finite. The transform runs at 32/28 px instead of 256/224: the same size arithmetic and budget checks, at
// 1/60 of the pixels (a 256-px bicubic resize under ASan and coverage costs ~100 ms an input).
#include "fuzz_util.h"
#include "image.h"
#include "preprocess.h"

#include <cmath>
#include <cstdint>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using ms::fuzz::check;
  const std::vector<char> bytes(data, data + size);
  ms::fuzz::run_one([&] {
    const ms::RgbImage image = ms::decode_image(bytes, "fuzz.img");
    const std::string dims = std::to_string(image.width) + "x" + std::to_string(image.height);
    check(image.width > 0 && image.height > 0, "decoded an image of " + dims + " pixels");
    const uint64_t w = static_cast<uint64_t>(image.width), h = static_cast<uint64_t>(image.height);
    check(w <= ms::kMaxImageSide && h <= ms::kMaxImageSide && w * h <= ms::kMaxImagePixels,
          "decoded " + dims + ", outside the decode budget");
    check(image.pixels.size() == w * h * 3,
          "a " + dims + " image holds " + std::to_string(image.pixels.size()) + " bytes");

    ms::PreprocessSpec spec;
    spec.resize = 32;
    spec.crop = 28;
    std::vector<float> out(static_cast<size_t>(spec.crop) * spec.crop * 3);
    ms::preprocess(image, spec, out.data(), "fuzz.img");
    for (float v : out) check(std::isfinite(v), "preprocessing a " + dims + " image gave a non-finite value");
  });
  return 0;
}
