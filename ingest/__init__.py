"""Notes in: walk, decode, split into line-addressed chunks, index in Chroma + BM25."""
