# MERGESCOPE_USE_CUDA: AUTO enables CUDA code paths when the LibTorch found was built with CUDA and nvcc
# exists; ON requires both; OFF never builds them. Debian's LibTorch is CPU-only, so AUTO is OFF there.
set(MERGESCOPE_HAVE_CUDA OFF)
set(_torch_has_cuda OFF)
if(TARGET torch_cuda OR TORCH_CUDA_LIBRARIES OR CAFFE2_USE_CUDA)
  set(_torch_has_cuda ON)
endif()
if(MERGESCOPE_USE_CUDA STREQUAL "ON")
  if(NOT _torch_has_cuda)
    message(FATAL_ERROR "MERGESCOPE_USE_CUDA=ON but the LibTorch at ${Torch_DIR} has no CUDA; "
                        "point CMAKE_PREFIX_PATH at a CUDA LibTorch (python -c 'import torch; print(torch.utils.cmake_prefix_path)')")
  endif()
  set(MERGESCOPE_HAVE_CUDA ON)
elseif(MERGESCOPE_USE_CUDA STREQUAL "AUTO")
  set(MERGESCOPE_HAVE_CUDA ${_torch_has_cuda})
elseif(NOT MERGESCOPE_USE_CUDA STREQUAL "OFF")
  message(FATAL_ERROR "MERGESCOPE_USE_CUDA must be AUTO, ON or OFF, not '${MERGESCOPE_USE_CUDA}'")
endif()
message(STATUS "mergescope: CUDA code paths ${MERGESCOPE_HAVE_CUDA} (MERGESCOPE_USE_CUDA=${MERGESCOPE_USE_CUDA})")
