// The exit codes of vitcc-pack, vitcc-run and vitcc-compile (README, "Exit codes"). A script tells a
// model vitcc cannot take from a file that is broken, and both from a wrong command line, without
// reading the one-line message on stderr.
#pragma once

namespace vitcc::tools::exit_code {

inline constexpr int ok = 0;
inline constexpr int failure = 1;      // none of the below: a compiler or a runner failed, an internal error
inline constexpr int usage = 2;        // the command line: an unknown option, a missing or malformed value
inline constexpr int input = 3;        // an input is unreadable or not what it must be: ONNX file, NAME.json,
                                       // blob, header, image or tensor file, labels, reference
inline constexpr int parity = 4;       // outputs outside their bound: vitcc-run --reference or --check,
                                       // vitcc-pack's self-check at the chosen precision
inline constexpr int unsupported = 5;  // vitcc-pack: a valid model that vitcc does not pack (an operator,
                                       // an architecture or a part of one it does not model); vitcc-run:
                                       // a runner compiled for instructions this CPU lacks (--target)
inline constexpr int io = 6;           // an output cannot be written: a folder, a file, the runner cache

}  // namespace vitcc::tools::exit_code
