// A row-major matrix of int8 codes in blocks of 16 or 32 values with one Float32 scale (and
// optionally one Float32 offset) per block: value = scale · q − offset. It holds the GGUF
// formats of our model exactly (decoded from the file's bytes, no re-quantisation):
//   Q8_0  blocks of 32: scale = d,            q ∈ [−127, 127]
//   Q5_0  blocks of 32: scale = d,            q − 16 ∈ [−16, 15]
//   Q4_K  blocks of 32: scale = d·sc_j, offset = dmin·m_j, q ∈ [0, 15]
//   Q6_K  blocks of 16: scale = d·sc_j,       q − 32 ∈ [−32, 31]
// At ≈1.1–1.25 bytes per weight instead of 4 (Float32) it cuts the memory traffic of a
// one-token matrix-vector product 3×; the kernel converts int8 → f32 (AVX2) and uses FMA.

import Dispatch

public final class Int8BlockMatrix: @unchecked Sendable {
    /// Number of rows (outputs) and row length (inputs).
    public let rows: Int
    public let cols: Int
    /// Values per block: 16 or 32.
    public let blockSize: Int
    /// The GGUF type the values were decoded from.
    public let sourceType: GGMLType
    let blocksPerRow: Int
    /// [rows · cols] codes.
    let quants: UnsafeMutablePointer<Int8>
    /// [rows · blocksPerRow] scales (and offsets, if any).
    let scales: UnsafeMutablePointer<Float>
    let offsets: UnsafeMutablePointer<Float>?
    /// K-quants, for ggml's integer accumulation (`matMulTQ8_K`): the integer sub-block scales
    /// (Q4_K: per 32, Q6_K: per 16) and mins (Q4_K), and the super-block d and dmin, as Float.
    let kScales: UnsafeMutablePointer<Float>?
    let kMins: UnsafeMutablePointer<Float>?
    let kD: UnsafeMutablePointer<Float>?
    let kDmin: UnsafeMutablePointer<Float>?
    /// Q8_0-style matrices (blocks of 32, no offsets) store each block's codes interleaved:
    /// position 8v + k holds element 4k + v, so that lane k of Σ_v (8 codes at 8v)·(8 inputs)
    /// is the sum over elements 4k…4k+3, ggml's AVX2 partial sums (`matMulTQ8_0`).
    public var interleaved: Bool { blockSize == 32 && offsets == nil }

    /// Types this matrix can hold exactly.
    public static func supports(_ type: GGMLType) -> Bool {
        [.q8_0, .q5_0, .q4_K, .q6_K].contains(type)
    }

    /// Decodes `rows` rows of `cols` values of a tensor of `type` whose raw GGUF bytes start at
    /// `data`; nil for types other than `supports(_:)`.
    public convenience init?(type: GGMLType, rows: Int, cols: Int, data: UnsafeRawPointer) {
        self.init(stacking: [(type, rows, data)], cols: cols)
    }

    /// Stacks tensors of `cols` columns vertically (their rows, in order). nil unless every
    /// part is supported and all share one block layout (Q8_0 and Q5_0 mix; Q4_K and Q6_K don't).
    public init?(stacking parts: [(type: GGMLType, rows: Int, data: UnsafeRawPointer)], cols: Int) {
        guard let first = parts.first,
              parts.allSatisfy({ Int8BlockMatrix.supports($0.type) && cols % $0.type.blockSize == 0 }),
              parts.allSatisfy({ ($0.type == .q6_K) == (first.type == .q6_K) && ($0.type == .q4_K) == (first.type == .q4_K) })
        else { return nil }
        let type = first.type
        rows = parts.reduce(0) { $0 + $1.rows }
        self.cols = cols
        sourceType = type
        let bs = type == .q6_K ? 16 : 32
        blockSize = bs
        blocksPerRow = cols / bs
        quants = .allocate(capacity: rows * cols)
        scales = .allocate(capacity: rows * blocksPerRow)
        offsets = type == .q4_K ? .allocate(capacity: rows * blocksPerRow) : nil
        let kq = type == .q4_K || type == .q6_K
        kScales = kq ? .allocate(capacity: rows * blocksPerRow) : nil
        kMins = type == .q4_K ? .allocate(capacity: rows * blocksPerRow) : nil
        kD = kq ? .allocate(capacity: rows * cols / 256) : nil
        kDmin = type == .q4_K ? .allocate(capacity: rows * cols / 256) : nil
        let q = SendablePointer(quants), s = SendablePointer(scales)
        let o = offsets.map { SendablePointer($0) }
        let ks = kScales.map { SendablePointer($0) }, km = kMins.map { SendablePointer($0) }
        let kd = kD.map { SendablePointer($0) }, kdm = kDmin.map { SendablePointer($0) }
        let nb = blocksPerRow
        var row0 = 0
        for part in parts {
            let rowBytes = cols / part.type.blockSize * part.type.bytesPerBlock
            let src = SendableRawPointer(part.data), t = part.type, first = row0, count = part.rows
            let chunk = 256
            DispatchQueue.concurrentPerform(iterations: (count + chunk - 1) / chunk) { c in
                for r in c * chunk ..< min(count, (c + 1) * chunk) {
                    let rr = first + r
                    Int8BlockMatrix.decodeRow(type: t, src: src.pointer + r * rowBytes, cols: cols,
                                              q: q.pointer + rr * cols, s: s.pointer + rr * nb,
                                              o: o.map { $0.pointer + rr * nb })
                    if let ks, let kd {
                        Int8BlockMatrix.decodeKScales(type: t, src: src.pointer + r * rowBytes, cols: cols,
                                                      sc: ks.pointer + rr * nb, m: km.map { $0.pointer + rr * nb },
                                                      d: kd.pointer + rr * (cols / 256), dmin: kdm.map { $0.pointer + rr * (cols / 256) })
                    }
                }
            }
            row0 += part.rows
        }
        if interleaved {
            let total = rows * blocksPerRow
            DispatchQueue.concurrentPerform(iterations: 64) { c in
                var tmp = [Int8](repeating: 0, count: 32)
                let lo = total * c / 64, hi = total * (c + 1) / 64
                for blk in lo..<hi {
                    let p = q.pointer + blk * 32
                    for i in 0..<32 { tmp[i] = p[i] }
                    for v in 0..<4 { for k in 0..<8 { p[8 * v + k] = tmp[4 * k + v] } }
                }
            }
        }
    }

    /// Index within a block of storage position `i` (the inverse of the interleaving).
    @inline(__always)
    func element(atStorage i: Int) -> Int { interleaved ? 4 * (i & 7) + (i >> 3) : i }

    deinit {
        quants.deallocate()
        scales.deallocate()
        offsets?.deallocate()
        kScales?.deallocate(); kMins?.deallocate(); kD?.deallocate(); kDmin?.deallocate()
    }

    private static func decodeKScales(type: GGMLType, src p: UnsafeRawPointer, cols: Int, sc: UnsafeMutablePointer<Float>,
                                      m: UnsafeMutablePointer<Float>?, d: UnsafeMutablePointer<Float>, dmin: UnsafeMutablePointer<Float>?) {
        for b in 0 ..< cols / 256 {
            if type == .q4_K {
                let blk = p + b * 144
                d[b] = Dequantizer.half(blk, 0); dmin![b] = Dequantizer.half(blk, 2)
                for j in 0..<8 {
                    let (scale, min) = Dequantizer.scaleMinK4(blk, 4, j)
                    sc[b * 8 + j] = Float(scale); m![b * 8 + j] = Float(min)
                }
            } else {
                d[b] = Dequantizer.half(p + b * 210, 208)
                let scs = (p + b * 210 + 192).assumingMemoryBound(to: Int8.self)
                for j in 0..<16 { sc[b * 16 + j] = Float(scs[j]) }
            }
        }
    }

    /// Y[n, rows] = Q8_K(X)[n, cols] · Mᵀ for a Q4_K or Q6_K matrix, as llama.cpp's CPU backend
    /// (AVX-512 build) computes it for n input rows: inputs rounded to Q8_K
    /// (`ActivationRounding.q8_K`), then exact integer sums and ggml's float steps.
    /// Q4_K (repacked q4_K_8x8): input rows in groups of four as its gemm (its own Q8_K sign
    /// rule; one FMA per pair of sub-blocks), the remaining n mod 4 rows as its gemv (one FMA
    /// per super-block). Q6_K: `vec_dot_q6_K_q8_K` below `tiledMinRows` rows, the tiled
    /// product from there on.
    public func matMulTQ8_K(_ x: UnsafePointer<Float>, count n: Int, into y: UnsafeMutablePointer<Float>, threads: Int = 2) {
        precondition(kScales != nil, "matMulTQ8_K needs a Q4_K or Q6_K matrix")
        guard n > 0 else { return }
        let ns = cols / 256
        let codes = UnsafeMutablePointer<Float>.allocate(capacity: n * cols)
        let dA = UnsafeMutablePointer<Float>.allocate(capacity: n * ns)
        let sums = UnsafeMutablePointer<Float>.allocate(capacity: n * cols / 32)
        let intCodes = UnsafeMutablePointer<Int32>.allocate(capacity: n * cols)
        let bsums = UnsafeMutablePointer<Int32>.allocate(capacity: n * cols / 16)
        defer { codes.deallocate(); dA.deallocate(); sums.deallocate(); intCodes.deallocate(); bsums.deallocate() }
        // Repacked Q4_K: rows in groups of four go through ggml's 4-row gemm (its own Q8_K
        // packer and per-pair accumulation), the rest one by one through its gemv.
        let gemmRows = sourceType == .q4_K ? n - n % 4 : 0
        for j in 0..<n {
            for b in 0..<ns {
                let src = x + j * cols + b * 256, dst = codes + j * cols + b * 256
                var amax: Float = 0, maxv: Float = 0
                for i in 0..<256 { let a = abs(src[i]); if a > amax { amax = a; maxv = src[i] } }
                if j < gemmRows && amax != 0 {
                    // The 4-row packer's sign rule: iscale < 0 as soon as some x equals +amax.
                    maxv = (0..<256).contains { src[$0] == amax } ? amax : -amax
                }
                if amax == 0 {
                    dst.update(repeating: 0, count: 256); dA[j * ns + b] = 0
                } else {
                    let iscale = -127 / maxv
                    for i in 0..<256 { dst[i] = min(127, (iscale * src[i]).rounded(.toNearestOrEven)) }
                    dA[j * ns + b] = 1 / iscale
                }
                for g in 0..<8 {
                    var t: Float = 0
                    for i in 0..<32 { t += dst[g * 32 + i] }
                    sums[j * cols / 32 + b * 8 + g] = t
                }
                let ic = intCodes + j * cols + b * 256
                for i in 0..<256 { ic[i] = Int32(dst[i]) }
                for g in 0..<16 {
                    var t: Int32 = 0
                    for i in 0..<16 { t &+= ic[g * 16 + i] }
                    bsums[j * cols / 16 + b * 16 + g] = t
                }
            }
        }
        let parts = max(1, min(threads, rows / 64))
        let per = ((rows + parts - 1) / parts + 15) / 16 * 16
        let cs = SendablePointer(codes), ds = SendablePointer(dA), ss = SendablePointer(sums), ys = SendablePointer(y)
        let ics = SendablePointer(intCodes), bss = SendablePointer(bsums)
        let q4 = sourceType == .q4_K
        let work: @Sendable (Int) -> Void = { p in
            let lo = p * per, hi = min(self.rows, lo + per)
            guard lo < hi else { return }
            if q4 {
                self.kernelQ4K(rowRange: lo..<hi, codes: cs.pointer, dA: ds.pointer, sums: ss.pointer, n: n,
                               gemmRows: gemmRows, y: ys.pointer)
            } else if n >= Self.tiledMinRows {
                self.kernelQ6KTiled(rowRange: lo..<hi, codes: ics.pointer, dA: ds.pointer, n: n, y: ys.pointer)
            } else {
                self.kernelQ6K(rowRange: lo..<hi, codes: ics.pointer, bsums: bss.pointer, dA: ds.pointer, n: n, y: ys.pointer)
            }
        }
        if parts == 1 { work(0) } else { DispatchQueue.concurrentPerform(iterations: parts, execute: work) }
    }

    /// Q4_K as ggml's repacked 8×8 kernels. Rows below `gemmRows` (the 4-row gemm): per pair p
    /// of 32-element sub-blocks the exact integers sc·Σq·q8 and m·Σq8 of both, each accumulated
    /// by FMA with d·d8 resp. dmin·d8. The other rows (gemv): the same per super-block.
    /// The min sum is subtracted at the end.
    private func kernelQ4K(rowRange: Range<Int>, codes: UnsafePointer<Float>, dA: UnsafePointer<Float>, sums: UnsafePointer<Float>,
                           n: Int, gemmRows: Int, y: UnsafeMutablePointer<Float>) {
        let c = cols, ns = c / 256, nb = blocksPerRow
        let sc = kScales!, mn = kMins!, dd = kD!, dm = kDmin!
        for r in rowRange {
            let qr = UnsafeRawPointer(quants + r * c)
            for j in 0..<n {
                let xj = codes + j * c
                let pairwise = j < gemmRows
                var acc: Float = 0, accMin: Float = 0
                for b in 0..<ns {
                    let da = dA[j * ns + b]
                    let sd = dd[r * ns + b] * da, sm = dm[r * ns + b] * da
                    let mrow = mn + r * nb + b * 8, srow = sums + j * c / 32 + b * 8
                    // sc_g·Σ q·q8 per sub-block: exact integers in Float (each below 2^22).
                    var part = SIMD8<Float>()
                    for g in 0..<8 {
                        let o = b * 256 + g * 32
                        var v = SIMD8<Float>(qr.loadUnaligned(fromByteOffset: o, as: SIMD8<Int8>.self)) * Kernels.load8(xj, o)
                        v.addProduct(SIMD8<Float>(qr.loadUnaligned(fromByteOffset: o + 8, as: SIMD8<Int8>.self)), Kernels.load8(xj, o + 8))
                        v.addProduct(SIMD8<Float>(qr.loadUnaligned(fromByteOffset: o + 16, as: SIMD8<Int8>.self)), Kernels.load8(xj, o + 16))
                        v.addProduct(SIMD8<Float>(qr.loadUnaligned(fromByteOffset: o + 24, as: SIMD8<Int8>.self)), Kernels.load8(xj, o + 24))
                        part[g] = v.sum() * sc[r * nb + b * 8 + g]
                    }
                    if pairwise {
                        for p in 0..<4 {
                            let ip = Float(Int32(part[2 * p]) &+ Int32(part[2 * p + 1]))
                            let mp = mrow[2 * p] * srow[2 * p] + mrow[2 * p + 1] * srow[2 * p + 1]  // exact
                            acc = acc.addingProduct(ip, sd)
                            accMin = accMin.addingProduct(mp, sm)
                        }
                    } else {
                        var isum: Int32 = 0
                        for g in 0..<8 { isum &+= Int32(part[g]) }
                        var mins: Float = 0
                        for g in 0..<8 { mins += mrow[g] * srow[g] }  // exact: |Σ| < 2^24
                        acc = acc.addingProduct(Float(isum), sd)
                        accMin = accMin.addingProduct(mins, sm)
                    }
                }
                y[j * rows + r] = acc - accMin
            }
        }
    }

    /// From this many input rows on, ggml multiplies a (not repacked) K-quant weight with its
    /// "tiled" matrix product instead of one `vec_dot` per output.
    static let tiledMinRows = 8

    /// ggml's tiled K-quant product for Q6_K: per output, one exact integer sum
    /// S = Σ sc·(q6 − 32)·q8 per 256-block, then acc = fma(Float(S)·d_w, d_a, acc) over the
    /// blocks in order (the product Float(S)·d_w rounded on its own).
    private func kernelQ6KTiled(rowRange: Range<Int>, codes: UnsafePointer<Int32>, dA: UnsafePointer<Float>, n: Int,
                                y: UnsafeMutablePointer<Float>) {
        let c = cols, ns = c / 256, nb = blocksPerRow
        let sc = kScales!, dd = kD!
        for r in rowRange {
            let qr = UnsafeRawPointer(quants + r * c)
            for j in 0..<n {
                let xj = UnsafeRawPointer(codes + j * c)
                var acc: Float = 0
                for b in 0..<ns {
                    var t = SIMD8<Int32>()
                    for g in 0..<16 {
                        let o = b * 256 + g * 16
                        let w0 = SIMD8<Int32>(truncatingIfNeeded: qr.loadUnaligned(fromByteOffset: o, as: SIMD8<Int8>.self))
                        let w1 = SIMD8<Int32>(truncatingIfNeeded: qr.loadUnaligned(fromByteOffset: o + 8, as: SIMD8<Int8>.self))
                        let a0 = xj.loadUnaligned(fromByteOffset: 4 * o, as: SIMD8<Int32>.self)
                        let a1 = xj.loadUnaligned(fromByteOffset: 4 * (o + 8), as: SIMD8<Int32>.self)
                        t &+= (w0 &* a0 &+ w1 &* a1) &* SIMD8<Int32>(repeating: Int32(sc[r * nb + b * 16 + g]))
                    }
                    let v = Float(t.wrappedSum()) * dd[r * ns + b]
                    acc = acc.addingProduct(v, dA[j * ns + b])
                }
                y[j * rows + r] = acc
            }
        }
    }

    /// ggml's AVX2 `vec_dot_q6_K_q8_K`, integer for integer: lane k of a super-block is
    /// Σ_chunks sc·Σ_{i<4} q6u·q8 over elements 4k…4k+3 of each 32-chunk (q6u = q + 32, the
    /// unsigned 6-bit code), minus 32·(sc[2k]·bsum[2k] + sc[2k+1]·bsum[2k+1]) (bsum: sums of
    /// 16 q8 codes) — the offset is taken per 32 elements, not per lane. Each lane goes to Float
    /// and is accumulated by FMA with d8·d; lanes reduced ((0+4)+(2+6))+((1+5)+(3+7)).
    private func kernelQ6K(rowRange: Range<Int>, codes: UnsafePointer<Int32>, bsums: UnsafePointer<Int32>,
                           dA: UnsafePointer<Float>, n: Int, y: UnsafeMutablePointer<Float>) {
        let c = cols, ns = c / 256, nb = blocksPerRow
        let sc = kScales!, dd = kD!
        let bias = SIMD8<Int32>(repeating: 32)
        for r in rowRange {
            let qr = UnsafeRawPointer(quants + r * c)
            for j in 0..<n {
                let xj = UnsafeRawPointer(codes + j * c)
                var acc = SIMD8<Float>()
                for b in 0..<ns {
                    var t0 = SIMD8<Int32>(), t1 = SIMD8<Int32>(), t2 = SIMD8<Int32>(), t3 = SIMD8<Int32>()
                    @inline(__always) func w(_ o: Int) -> SIMD8<Int32> {
                        SIMD8<Int32>(truncatingIfNeeded: qr.loadUnaligned(fromByteOffset: o, as: SIMD8<Int8>.self)) &+ bias
                    }
                    @inline(__always) func a(_ o: Int) -> SIMD8<Int32> { xj.loadUnaligned(fromByteOffset: 4 * o, as: SIMD8<Int32>.self) }
                    for ch in 0..<8 {
                        let o = b * 256 + ch * 32
                        let s0 = SIMD8<Int32>(repeating: Int32(sc[r * nb + b * 16 + 2 * ch]))
                        let s1 = SIMD8<Int32>(repeating: Int32(sc[r * nb + b * 16 + 2 * ch + 1]))
                        t0 &+= (w(o) &* a(o)) &* s0
                        t1 &+= (w(o + 8) &* a(o + 8)) &* s0
                        t2 &+= (w(o + 16) &* a(o + 16)) &* s1
                        t3 &+= (w(o + 24) &* a(o + 24)) &* s1
                    }
                    let bs = bsums + j * (c / 16) + b * 16, srow = sc + r * nb + b * 16
                    var lanes = SIMD8<Float>()
                    for k in 0..<8 {
                        let t = k < 2 ? t0 : k < 4 ? t1 : k < 6 ? t2 : t3, h = (k & 1) * 4
                        let prod = t[h] &+ t[h + 1] &+ t[h + 2] &+ t[h + 3]
                        let sub = 32 &* (Int32(srow[2 * k]) &* bs[2 * k] &+ Int32(srow[2 * k + 1]) &* bs[2 * k + 1])
                        lanes[k] = Float(prod &- sub)
                    }
                    acc.addProduct(SIMD8(repeating: dA[j * ns + b] * dd[r * ns + b]), lanes)
                }
                let h = acc.highHalf + acc.lowHalf
                y[j * rows + r] = (h[0] + h[2]) + (h[1] + h[3])
            }
        }
    }

    private static func decodeRow(type: GGMLType, src p: UnsafeRawPointer, cols: Int,
                                  q: UnsafeMutablePointer<Int8>, s: UnsafeMutablePointer<Float>,
                                  o: UnsafeMutablePointer<Float>?) {
        let u = p.assumingMemoryBound(to: UInt8.self)
        switch type {
        case .q8_0:
            for b in 0 ..< cols / 32 {
                let blk = p + b * 34
                s[b] = Dequantizer.half(blk, 0)
                (q + b * 32).update(from: (blk + 2).assumingMemoryBound(to: Int8.self), count: 32)
            }
        case .q5_0:
            for b in 0 ..< cols / 32 {
                let blk = p + b * 22
                s[b] = Dequantizer.half(blk, 0)
                let qh = UInt32(littleEndian: blk.loadUnaligned(fromByteOffset: 2, as: UInt32.self))
                let qs = u + b * 22 + 6
                for j in 0..<16 {
                    let lo = Int32(qs[j] & 0x0F) | Int32((qh >> UInt32(j)) & 1) << 4
                    let hi = Int32(qs[j] >> 4) | Int32((qh >> UInt32(j + 16)) & 1) << 4
                    q[b * 32 + j] = Int8(lo - 16)
                    q[b * 32 + j + 16] = Int8(hi - 16)
                }
            }
        case .q4_K:
            for b in 0 ..< cols / 256 {
                let blk = p + b * 144, ub = u + b * 144
                let d = Dequantizer.half(blk, 0), dmin = Dequantizer.half(blk, 2)
                func scaleMin(_ j: Int) -> (Float, Float) {
                    let (scale, min) = Dequantizer.scaleMinK4(blk, 4, j)
                    return (Float(scale), Float(min))
                }
                for g in 0..<4 {
                    let (sc0, m0) = scaleMin(2 * g), (sc1, m1) = scaleMin(2 * g + 1)
                    let sb = b * 8 + 2 * g
                    s[sb] = d * sc0; o![sb] = dmin * m0
                    s[sb + 1] = d * sc1; o![sb + 1] = dmin * m1
                    let qs = ub + 16 + g * 32
                    let out = q + b * 256 + g * 64
                    for l in 0..<32 {
                        out[l] = Int8(qs[l] & 0x0F)
                        out[l + 32] = Int8(qs[l] >> 4)
                    }
                }
            }
        case .q6_K:
            for b in 0 ..< cols / 256 {
                let blk = p + b * 210, ub = u + b * 210
                let d = Dequantizer.half(blk, 208)
                let scs = (blk + 192).assumingMemoryBound(to: Int8.self)
                for j in 0..<16 { s[b * 16 + j] = d * Float(scs[j]) }
                for g in 0..<2 {
                    let ql = ub + g * 64, qh = ub + 128 + g * 32
                    let out = q + b * 256 + g * 128
                    for l in 0..<32 {
                        let h = qh[l], a = ql[l], c = ql[l + 32]
                        out[l] = Int8(Int32((a & 0x0F) | ((h & 3) << 4)) - 32)
                        out[l + 32] = Int8(Int32((c & 0x0F) | (((h >> 2) & 3) << 4)) - 32)
                        out[l + 64] = Int8(Int32((a >> 4) | (((h >> 4) & 3) << 4)) - 32)
                        out[l + 96] = Int8(Int32((c >> 4) | (((h >> 6) & 3) << 4)) - 32)
                    }
                }
            }
        default:
            preconditionFailure("Int8BlockMatrix: unsupported type \(type)")
        }
    }

    /// Bytes held.
    public var byteCount: Int { rows * cols + rows * blocksPerRow * 4 * (offsets == nil ? 1 : 2) }

    /// Row r as Float32 into `out` (cols values).
    public func copyRow(_ r: Int, into out: UnsafeMutablePointer<Float>) {
        precondition(r >= 0 && r < rows, "Int8BlockMatrix row \(r) out of 0..<\(rows)")
        let q = quants + r * cols
        for b in 0..<blocksPerRow {
            let sc = scales[r * blocksPerRow + b], off = offsets?[r * blocksPerRow + b] ?? 0
            let o = b * blockSize
            for i in 0..<blockSize { out[o + element(atStorage: i)] = sc * Float(q[o + i]) - off }
        }
    }

    /// All values as a row-major Float32 array (tests).
    public func dequantized() -> [Float] {
        [Float](unsafeUninitializedCapacity: rows * cols) { buf, n in
            for r in 0..<rows { copyRow(r, into: buf.baseAddress! + r * cols) }
            n = rows * cols
        }
    }

    /// Y[n, rows] = X[n, cols] · Mᵀ (row stride of Y: `rows`), rows split over `threads`.
    public func matMulT(_ x: UnsafePointer<Float>, count n: Int, into y: UnsafeMutablePointer<Float>, threads: Int = 2) {
        guard n > 0 else { return }
        if interleaved {
            // Interleave the inputs like the codes, then the plain kernel pairs them up.
            let xp = UnsafeMutablePointer<Float>.allocate(capacity: n * cols)
            defer { xp.deallocate() }
            for j in 0..<n {
                for b in 0..<blocksPerRow {
                    let src = x + j * cols + b * 32, dst = xp + j * cols + b * 32
                    for i in 0..<32 { dst[i] = src[element(atStorage: i)] }
                }
            }
            matMulTPlain(UnsafePointer(xp), count: n, into: y, threads: threads)
            return
        }
        matMulTPlain(x, count: n, into: y, threads: threads)
    }

    /// Y[n, rows] = Q8_0(X)[n, cols] · Mᵀ for a Q8_0-style (`interleaved`) matrix, the way
    /// ggml's AVX2 `vec_dot_q8_0_q8_0` / `vec_dot_q5_0_q8_0` (and llamafile's tinyBLAS) compute
    /// it: each input row rounded to Q8_0 (`ActivationRounding.q8_0`), then per block b the
    /// eight exact integer partial sums L_k = Σ_{i<4} w[4k+i]·a[4k+i] accumulated as
    /// acc_k = fma(d_w·d_a, L_k, acc_k) and the lanes reduced ((0+4)+(2+6))+((1+5)+(3+7)).
    /// Bit-identical to llama.cpp's result for these weight types.
    public func matMulTQ8_0(_ x: UnsafePointer<Float>, count n: Int, into y: UnsafeMutablePointer<Float>, threads: Int = 2) {
        precondition(interleaved, "matMulTQ8_0 needs a Q8_0-style matrix")
        guard n > 0 else { return }
        let nb = blocksPerRow
        // Codes (as Float, interleaved like the weights) and f16 scales of the inputs.
        let codes = UnsafeMutablePointer<Float>.allocate(capacity: n * cols)
        let dA = UnsafeMutablePointer<Float>.allocate(capacity: n * nb)
        defer { codes.deallocate(); dA.deallocate() }
        for j in 0..<n {
            for b in 0..<nb {
                let src = x + j * cols + b * 32
                var m: Float = 0
                for i in 0..<32 { m = max(m, abs(src[i])) }
                let id: Float = m != 0 ? 127 / m : 0
                dA[j * nb + b] = Float(Float16(m / 127))
                let dst = codes + j * cols + b * 32
                for i in 0..<32 { dst[i] = (src[element(atStorage: i)] * id).rounded(.toNearestOrEven) }
            }
        }
        let parts = max(1, min(threads, rows / 64))
        let per = ((rows + parts - 1) / parts + 15) / 16 * 16
        let cs = SendablePointer(codes), ds = SendablePointer(dA), ys = SendablePointer(y)
        let work: @Sendable (Int) -> Void = { p in
            let lo = p * per, hi = min(self.rows, lo + per)
            if lo < hi { self.kernelQ8_0(rowRange: lo..<hi, codes: cs.pointer, dA: ds.pointer, n: n, y: ys.pointer) }
        }
        if parts == 1 { work(0) } else { DispatchQueue.concurrentPerform(iterations: parts, execute: work) }
    }

    private func kernelQ8_0(rowRange: Range<Int>, codes: UnsafePointer<Float>, dA: UnsafePointer<Float>, n: Int, y: UnsafeMutablePointer<Float>) {
        let c = cols, nb = blocksPerRow
        for r in rowRange {
            let qr = UnsafeRawPointer(quants + r * c)
            let sr = scales + r * nb
            for j in 0..<n {
                let xj = codes + j * c, dj = dA + j * nb
                var acc = SIMD8<Float>()
                for b in 0..<nb {
                    let o = b * 32
                    var l = SIMD8<Float>(qr.loadUnaligned(fromByteOffset: o, as: SIMD8<Int8>.self)) * Kernels.load8(xj, o)
                    l += SIMD8<Float>(qr.loadUnaligned(fromByteOffset: o + 8, as: SIMD8<Int8>.self)) * Kernels.load8(xj, o + 8)
                    l += SIMD8<Float>(qr.loadUnaligned(fromByteOffset: o + 16, as: SIMD8<Int8>.self)) * Kernels.load8(xj, o + 16)
                    l += SIMD8<Float>(qr.loadUnaligned(fromByteOffset: o + 24, as: SIMD8<Int8>.self)) * Kernels.load8(xj, o + 24)
                    acc.addProduct(l, SIMD8<Float>(repeating: sr[b] * dj[b]))
                }
                let a = acc.highHalf + acc.lowHalf
                y[j * rows + r] = (a[0] + a[2]) + (a[1] + a[3])
            }
        }
    }

    private func matMulTPlain(_ x: UnsafePointer<Float>, count n: Int, into y: UnsafeMutablePointer<Float>, threads: Int) {
        // Σ_block x per input row, for the offsets.
        let sums: UnsafeMutablePointer<Float>? = offsets == nil ? nil : .allocate(capacity: n * blocksPerRow)
        defer { sums?.deallocate() }
        if let sums {
            for j in 0..<n {
                for b in 0..<blocksPerRow {
                    var acc = SIMD8<Float>()
                    var i = b * blockSize
                    while i < (b + 1) * blockSize { acc += Kernels.load8(x + j * cols, i); i += 8 }
                    sums[j * blocksPerRow + b] = acc.sum()
                }
            }
        }
        let parts = max(1, min(threads, rows / 64))
        if parts == 1 {
            kernel(rowRange: 0..<rows, x: x, n: n, sums: sums, y: y)
            return
        }
        // Row blocks of a multiple of 16.
        let per = ((rows + parts - 1) / parts + 15) / 16 * 16
        let xs = SendablePointer(x), ys = SendablePointer(y), ss = sums.map { SendablePointer($0) }
        DispatchQueue.concurrentPerform(iterations: parts) { p in
            let lo = p * per, hi = min(rows, lo + per)
            if lo < hi { self.kernel(rowRange: lo..<hi, x: xs.pointer, n: n, sums: ss?.pointer, y: ys.pointer) }
        }
    }

    private func kernel(rowRange: Range<Int>, x: UnsafePointer<Float>, n: Int, sums: UnsafePointer<Float>?, y: UnsafeMutablePointer<Float>) {
        let c = cols, nb = blocksPerRow
        for r in rowRange {
            let qr = UnsafeRawPointer(quants + r * c)
            let sr = scales + r * nb
            for j in 0..<n {
                let xj = x + j * c
                var acc0 = SIMD8<Float>(), acc1 = SIMD8<Float>()
                if blockSize == 32 {
                    var b = 0
                    while b < nb {
                        let o = b * 32
                        var s = SIMD8<Float>(qr.loadUnaligned(fromByteOffset: o, as: SIMD8<Int8>.self)) * Kernels.load8(xj, o)
                        var t = SIMD8<Float>(qr.loadUnaligned(fromByteOffset: o + 8, as: SIMD8<Int8>.self)) * Kernels.load8(xj, o + 8)
                        s.addProduct(SIMD8<Float>(qr.loadUnaligned(fromByteOffset: o + 16, as: SIMD8<Int8>.self)), Kernels.load8(xj, o + 16))
                        t.addProduct(SIMD8<Float>(qr.loadUnaligned(fromByteOffset: o + 24, as: SIMD8<Int8>.self)), Kernels.load8(xj, o + 24))
                        let scale = SIMD8<Float>(repeating: sr[b])
                        if b & 1 == 0 { acc0.addProduct(s + t, scale) } else { acc1.addProduct(s + t, scale) }
                        b += 1
                    }
                } else {
                    var b = 0
                    while b < nb {
                        let o = b * 16
                        var s = SIMD8<Float>(qr.loadUnaligned(fromByteOffset: o, as: SIMD8<Int8>.self)) * Kernels.load8(xj, o)
                        s.addProduct(SIMD8<Float>(qr.loadUnaligned(fromByteOffset: o + 8, as: SIMD8<Int8>.self)), Kernels.load8(xj, o + 8))
                        let scale = SIMD8<Float>(repeating: sr[b])
                        if b & 1 == 0 { acc0.addProduct(s, scale) } else { acc1.addProduct(s, scale) }
                        b += 1
                    }
                }
                var total = (acc0 + acc1).sum()
                if let offsets, let sums {
                    let orow = offsets + r * nb, srow = sums + j * nb
                    var m: Float = 0
                    for b in 0..<nb { m += orow[b] * srow[b] }
                    total -= m
                }
                y[j * rows + r] = total
            }
        }
    }
}

/// A raw pointer that can be captured by `concurrentPerform` closures (read-only use).
struct SendableRawPointer: @unchecked Sendable {
    let pointer: UnsafeRawPointer
    init(_ pointer: UnsafeRawPointer) { self.pointer = pointer }
}
