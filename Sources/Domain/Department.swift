/// 科室: a clinical department, which in ClinicMesh also runs its own node.
public struct Department: Hashable, Sendable {
    public let id: DepartmentID
    /// Chinese name, e.g. "心血管内科"; shown first.
    public let nameZh: String
    /// English name, e.g. "Cardiology".
    public let nameEn: String

    public init(id: DepartmentID, nameZh: String, nameEn: String) throws(ValidationError) {
        self.id = id
        self.nameZh = try InputText.nonEmptyText(nameZh, field: "nameZh", maxLength: 50, zhLabel: "科室中文名称", enLabel: "Chinese department name")
        self.nameEn = try InputText.nonEmptyText(nameEn, field: "nameEn", maxLength: 100, zhLabel: "科室英文名称", enLabel: "English department name")
    }
}

extension Department: Codable {
    private enum CodingKeys: String, CodingKey { case id, nameZh, nameEn }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        try self.init(
            id: container.decode(DepartmentID.self, forKey: .id),
            nameZh: container.decode(String.self, forKey: .nameZh),
            nameEn: container.decode(String.self, forKey: .nameEn))
    }
}
