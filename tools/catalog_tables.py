"""Source tables for the recognized-items catalog (read by tools/build_terminology.py).

Facts used: LOINC codes listed as checked or commonly cited in shared/domain.md and other well-known
LOINC codes; item lists as in the public reports (a county lab list, imaging by modality and body part).
Illustrative defaults that a region replaces: validity windows not published (imaging, most lab items),
minimum institution levels, reference prices (CNY).
Rows: (code, Chinese display, English display, LOINC or "", validity days, min level, price CNY, extra)
"""

from __future__ import annotations

# -- laboratory -------------------------------------------------------------------------------------------
# sub-category code, Chinese, English, specimen
LAB_GROUPS = [
    ("LAB-HEM", "血液学检验", "Haematology", "全血 whole blood"),
    ("LAB-CHEM", "临床化学检验", "Clinical chemistry", "血清 serum"),
    ("LAB-IMM", "免疫学检验", "Immunology", "血清 serum"),
    ("LAB-COAG", "凝血检验", "Coagulation", "枸橼酸钠抗凝血浆 citrated plasma"),
    ("LAB-URINE", "尿液检验", "Urinalysis", "尿液 urine"),
    ("LAB-STOOL", "粪便检验", "Stool examination", "粪便 stool"),
    ("LAB-BLOODBANK", "输血相关检验", "Blood bank", "全血 whole blood"),
]

LAB_ITEMS = {
    "LAB-HEM": [
        ("P", "血常规", "Complete blood count panel", "58410-2", 7, 1, 25),
        ("", "白细胞计数", "Leukocytes [#/volume] in Blood", "6690-2", 7, 1, 3),
        ("", "中性粒细胞绝对值", "Neutrophils [#/volume] in Blood", "751-8", 7, 1, 2),
        ("", "中性粒细胞百分比", "Neutrophils/100 leukocytes in Blood", "770-8", 7, 1, 2),
        ("", "淋巴细胞绝对值", "Lymphocytes [#/volume] in Blood", "731-0", 7, 1, 2),
        ("", "淋巴细胞百分比", "Lymphocytes/100 leukocytes in Blood", "736-9", 7, 1, 2),
        ("", "单核细胞绝对值", "Monocytes [#/volume] in Blood", "742-7", 7, 1, 2),
        ("", "单核细胞百分比", "Monocytes/100 leukocytes in Blood", "5905-5", 7, 1, 2),
        ("", "嗜酸性粒细胞绝对值", "Eosinophils [#/volume] in Blood", "711-2", 7, 1, 2),
        ("", "嗜酸性粒细胞百分比", "Eosinophils/100 leukocytes in Blood", "713-8", 7, 1, 2),
        ("", "嗜碱性粒细胞绝对值", "Basophils [#/volume] in Blood", "704-7", 7, 1, 2),
        ("", "嗜碱性粒细胞百分比", "Basophils/100 leukocytes in Blood", "706-2", 7, 1, 2),
        ("", "红细胞计数", "Erythrocytes [#/volume] in Blood", "789-8", 7, 1, 3),
        ("", "血红蛋白", "Hemoglobin [Mass/volume] in Blood", "718-7", 7, 1, 3),
        ("", "红细胞压积", "Hematocrit [Volume Fraction] of Blood", "4544-3", 7, 1, 2),
        ("", "平均红细胞体积", "MCV [Entitic volume]", "787-2", 7, 1, 2),
        ("", "平均红细胞血红蛋白量", "MCH [Entitic mass]", "785-6", 7, 1, 2),
        ("", "平均红细胞血红蛋白浓度", "MCHC [Mass/volume]", "786-4", 7, 1, 2),
        ("", "血小板计数", "Platelets [#/volume] in Blood", "777-3", 7, 1, 3),
        ("", "红细胞沉降率", "Erythrocyte sedimentation rate", "4537-7", 7, 1, 8),
        ("", "网织红细胞计数", "Reticulocytes [#/volume] in Blood", "14196-0", 7, 1, 10),
        ("", "糖化血红蛋白", "Hemoglobin A1c/Hemoglobin.total in Blood", "4548-4", 60, 1, 60),
        ("", "外周血细胞形态", "Peripheral blood smear morphology", "", 7, 2, 20),
    ],
    "LAB-CHEM": [
        ("P", "肝功能", "Hepatic function panel", "24325-3", 30, 1, 60),
        ("", "总蛋白", "Protein [Mass/volume] in Serum or Plasma", "2885-2", 30, 1, 4),
        ("", "白蛋白", "Albumin [Mass/volume] in Serum or Plasma", "1751-7", 30, 1, 4),
        ("", "丙氨酸氨基转移酶", "Alanine aminotransferase (ALT)", "1742-6", 30, 1, 5),
        ("", "天门冬氨酸氨基转移酶", "Aspartate aminotransferase (AST)", "1920-8", 30, 1, 5),
        ("", "碱性磷酸酶", "Alkaline phosphatase (ALP)", "6768-6", 30, 1, 5),
        ("", "γ-谷氨酰转移酶", "Gamma glutamyl transferase (GGT)", "2324-2", 30, 1, 5),
        ("", "总胆红素", "Bilirubin.total [Mass/volume] in Serum or Plasma", "1975-2", 30, 1, 5),
        ("", "直接胆红素", "Bilirubin.direct [Mass/volume] in Serum or Plasma", "1968-7", 30, 1, 5),
        ("", "乳酸脱氢酶", "Lactate dehydrogenase (LDH)", "2532-0", 30, 1, 6),
        ("P", "肾功能", "Renal function panel", "24362-6", 30, 1, 40),
        ("", "尿素", "Urea [Moles/volume] in Serum or Plasma", "22664-7", 30, 1, 5),
        ("", "肌酐", "Creatinine [Moles/volume] in Serum or Plasma", "14682-9", 30, 1, 5),
        ("", "尿酸", "Urate [Mass/volume] in Serum or Plasma", "3084-1", 30, 1, 5),
        ("P", "血脂四项", "Lipid panel", "24331-1", 30, 1, 40),
        ("", "总胆固醇", "Cholesterol [Moles/volume] in Serum or Plasma", "14647-2", 30, 1, 5),
        ("", "甘油三酯", "Triglyceride [Mass/volume] in Serum or Plasma", "2571-8", 30, 1, 5),
        ("", "高密度脂蛋白胆固醇", "HDL Cholesterol [Mass/volume] in Serum or Plasma", "2085-9", 30, 1, 8),
        ("", "低密度脂蛋白胆固醇", "LDL Cholesterol [Mass/volume] (calculated)", "13457-7", 30, 1, 8),
        ("", "空腹血糖", "Glucose [Mass/volume] in Serum or Plasma", "2345-7", 30, 1, 4),
        ("P", "电解质", "Electrolytes panel", "24326-1", 7, 1, 30),
        ("", "钾", "Potassium [Moles/volume] in Serum or Plasma", "2823-3", 7, 1, 4),
        ("", "钠", "Sodium [Moles/volume] in Serum or Plasma", "2951-2", 7, 1, 4),
        ("", "氯", "Chloride [Moles/volume] in Serum or Plasma", "2075-0", 7, 1, 4),
        ("", "钙", "Calcium [Mass/volume] in Serum or Plasma", "17861-6", 7, 1, 4),
        ("", "镁", "Magnesium [Mass/volume] in Serum or Plasma", "19123-9", 7, 1, 4),
        ("", "磷", "Phosphate [Mass/volume] in Serum or Plasma", "2777-1", 7, 1, 4),
        ("", "铁", "Iron [Mass/volume] in Serum or Plasma", "2498-4", 7, 1, 6),
        ("", "肌酸激酶", "Creatine kinase", "2157-6", 14, 1, 8),
        ("", "肌酸激酶同工酶", "Creatine kinase.MB", "13969-1", 7, 1, 15),
        ("", "淀粉酶", "Amylase", "1798-8", 7, 1, 8),
        ("", "C反应蛋白", "C reactive protein", "1988-5", 7, 1, 20),
        ("", "同型半胱氨酸", "Homocysteine", "13965-9", 30, 1, 40),
        ("", "前白蛋白", "Prealbumin", "14338-8", 30, 1, 15),
        ("", "总胆汁酸", "Bile acid", "14628-2", 30, 1, 10),
        ("", "胆碱酯酶", "Cholinesterase", "2098-2", 30, 1, 10),
        ("", "载脂蛋白A1", "Apolipoprotein A-I", "1869-7", 30, 1, 10),
        ("", "载脂蛋白B", "Apolipoprotein B", "1884-6", 30, 1, 10),
        ("", "脂蛋白(a)", "Lipoprotein (a)", "10835-7", 30, 1, 20),
        ("", "胱抑素C", "Cystatin C", "33863-2", 30, 1, 40),
        ("", "β2微球蛋白", "Beta-2-Microglobulin", "1952-1", 30, 1, 25),
        ("", "二氧化碳结合力", "Carbon dioxide, total", "2028-9", 7, 1, 5),
        ("", "血氨", "Ammonia", "16362-6", 3, 1, 20),
        ("", "乳酸", "Lactate", "2524-7", 3, 1, 20),
        ("", "餐后2小时血糖", "Glucose 2 hours post meal", "1521-4", 30, 1, 4),
        ("", "葡萄糖耐量试验", "Oral glucose tolerance test", "", 90, 1, 40),
        ("", "血清渗透压", "Osmolality of Serum", "2692-2", 3, 1, 10),
    ],
    "LAB-IMM": [
        ("P", "乙肝五项", "Hepatitis B serology panel", "", 180, 1, 80),
        ("", "乙肝表面抗原", "Hepatitis B virus surface Ag", "5196-1", 180, 1, 15),
        ("", "乙肝表面抗体", "Hepatitis B virus surface Ab", "16935-9", 180, 1, 15),
        ("", "乙肝e抗原", "Hepatitis B virus e Ag", "13954-3", 180, 1, 15),
        ("", "乙肝e抗体", "Hepatitis B virus e Ab", "13953-5", 180, 1, 15),
        ("", "乙肝核心抗体", "Hepatitis B virus core Ab", "16933-4", 180, 1, 15),
        ("", "丙肝抗体", "Hepatitis C virus Ab", "16128-1", 180, 1, 40),
        ("", "梅毒螺旋体抗体", "Treponema pallidum Ab", "22587-0", 180, 1, 30),
        ("", "艾滋病抗体", "HIV 1+2 Ab", "31201-7", 180, 1, 40),
        ("P", "甲功三项", "Thyroid function panel", "", 90, 2, 120),
        ("", "促甲状腺激素", "Thyrotropin (TSH)", "3016-3", 90, 2, 40),
        ("", "游离甲状腺素", "Thyroxine (T4) free", "3024-7", 90, 2, 40),
        ("", "游离三碘甲状腺原氨酸", "Triiodothyronine (T3) free", "3051-0", 90, 2, 40),
        ("", "癌胚抗原", "Carcinoembryonic Ag (CEA)", "2039-6", 90, 2, 50),
        ("", "甲胎蛋白", "Alpha-1-Fetoprotein (AFP)", "1834-1", 90, 2, 50),
        ("", "糖类抗原125", "Cancer Ag 125", "10334-1", 90, 2, 70),
        ("", "糖类抗原199", "Cancer Ag 19-9", "24108-3", 90, 2, 70),
        ("", "前列腺特异性抗原", "Prostate specific Ag", "2857-1", 90, 2, 60),
        ("", "铁蛋白", "Ferritin", "2276-4", 30, 2, 40),
        ("", "抗链球菌溶血素O", "Streptolysin O Ab", "5370-2", 30, 1, 20),
        ("", "类风湿因子", "Rheumatoid factor", "11572-5", 30, 1, 20),
        ("", "降钙素原", "Procalcitonin", "33959-8", 3, 2, 120),
        ("", "肌钙蛋白I", "Troponin I.cardiac", "10839-9", 1, 2, 80),
        ("", "N末端B型利钠肽原", "NT-proBNP", "33762-6", 7, 2, 150),
        ("", "胰岛素", "Insulin", "20448-7", 30, 2, 40),
        ("", "C肽", "C peptide", "1986-9", 30, 2, 40),
        ("", "皮质醇", "Cortisol", "2143-6", 7, 2, 40),
        ("", "抗核抗体", "Nuclear Ab", "8061-4", 90, 2, 60),
        ("", "免疫球蛋白G", "IgG", "2465-3", 90, 2, 20),
        ("", "免疫球蛋白A", "IgA", "2458-8", 90, 2, 20),
        ("", "免疫球蛋白M", "IgM", "2472-4", 90, 2, 20),
        ("", "补体C3", "Complement C3", "4485-9", 90, 2, 20),
        ("", "补体C4", "Complement C4", "4498-2", 90, 2, 20),
        ("", "人绒毛膜促性腺激素", "Choriogonadotropin.beta", "21198-7", 3, 1, 40),
        ("", "维生素D", "25-Hydroxyvitamin D3", "1989-3", 90, 2, 80),
        ("", "甲型肝炎抗体IgM", "Hepatitis A virus IgM Ab", "13950-1", 30, 1, 40),
        ("", "戊型肝炎抗体IgM", "Hepatitis E virus IgM Ab", "", 30, 1, 40),
        ("", "EB病毒衣壳抗原IgA抗体", "Epstein Barr virus capsid IgA Ab", "", 90, 2, 60),
    ],
    "LAB-COAG": [
        ("P", "凝血四项", "Coagulation panel", "", 3, 1, 80),
        ("", "凝血酶原时间", "Prothrombin time (PT)", "5902-2", 3, 1, 15),
        ("", "国际标准化比值", "INR", "6301-6", 3, 1, 5),
        ("", "活化部分凝血活酶时间", "aPTT", "3173-2", 3, 1, 15),
        ("", "纤维蛋白原", "Fibrinogen", "3255-7", 3, 1, 20),
        ("", "凝血酶时间", "Thrombin time", "3243-3", 3, 1, 15),
        ("", "D-二聚体", "Fibrin D-dimer", "48065-7", 3, 1, 60),
    ],
    "LAB-URINE": [
        ("P", "尿常规", "Urinalysis panel", "24356-8", 7, 1, 20),
        ("", "尿蛋白", "Protein [Presence] in Urine", "20454-5", 7, 1, 3),
        ("", "尿糖", "Glucose [Presence] in Urine", "25428-4", 7, 1, 3),
        ("", "尿潜血", "Hemoglobin [Presence] in Urine", "5794-3", 7, 1, 3),
        ("", "尿比重", "Specific gravity of Urine", "5811-5", 7, 1, 3),
        ("", "尿白细胞", "Leukocytes [#/area] in Urine sediment", "5821-4", 7, 1, 3),
        ("", "尿微量白蛋白", "Microalbumin [Mass/volume] in Urine", "14957-5", 30, 1, 30),
        ("", "尿肌酐", "Creatinine [Moles/volume] in Urine", "14683-7", 30, 1, 10),
        ("", "24小时尿蛋白定量", "Protein [Mass/time] in 24 hour Urine", "2889-4", 30, 1, 20),
    ],
    "LAB-STOOL": [
        ("P", "大便常规", "Stool examination panel", "", 7, 1, 15),
        ("", "粪便隐血", "Hemoglobin.gastrointestinal [Presence] in Stool", "2335-8", 7, 1, 10),
    ],
    "LAB-BLOODBANK": [
        ("", "ABO血型", "ABO group [Type] in Blood", "883-9", 3650, 1, 15),
        ("", "Rh(D)血型", "Rh [Type] in Blood", "10331-7", 3650, 1, 15),
    ],
}

# Where each LOINC code above comes from (the ConceptMap hr-loinc-to-item names it per mapping): the codes checked
# in the project's domain notes, else a match of the item to the LOINC long common name by the project.
CHECKED_LOINC = frozenset({"777-3", "22664-7", "4548-4", "14647-2", "2571-8", "13457-7", "2823-3", "2951-2", "2345-7",
                           "58410-2", "36643-5", "24627-2", "30799-1", "24590-2", "41806-1"})
CITED_LOINC = frozenset({"718-7", "6690-2", "1742-6", "1920-8", "14682-9", "3016-3", "5196-1", "2039-6", "1834-1"})

# Words doctors type for an imaging modality (designations of every item of the modality, Chinese and English).
MODALITY_SYNONYMS = {
    "DX": (("X线", "平片", "X光"), ("X-ray", "XR")),
    "CT": ((), ("CT",)),
    "MR": (("核磁", "磁共振"), ("MRI", "MR")),
    "US": (("B超", "彩超"), ("ultrasound", "US")),
    "MG": (("钼靶",), ("mammogram",)),
}
# Extra names of single items (chest radiograph is 胸片 to every doctor).
ITEM_SYNONYMS = {
    "DX-CHEST": ("胸片", "chest X-ray"), "DX-CHEST-LAT": ("胸片", "chest X-ray"), "LAB-HEM-001": ("CBC", "血象"),
    "LAB-HEM-002": ("WBC",), "LAB-HEM-014": ("HGB", "Hb"), "LAB-HEM-019": ("PLT",), "LAB-HEM-022": ("HbA1c",),
    "LAB-CHEM-001": ("肝功", "LFT"), "LAB-CHEM-004": ("ALT", "谷丙转氨酶"), "LAB-CHEM-005": ("AST", "谷草转氨酶"),
    "LAB-CHEM-011": ("肾功",), "LAB-CHEM-013": ("Cr",), "LAB-CHEM-015": ("血脂",), "LAB-CHEM-032": ("CRP",),
    "LAB-IMM-001": ("两对半",), "LAB-IMM-010": ("甲功",), "LAB-IMM-011": ("TSH",), "LAB-COAG-001": ("凝血功能",),
    "US-ECHO": ("心超", "心脏彩超"),
}

# -- imaging ---------------------------------------------------------------------------------------------
# modality code, sub-category code, Chinese, English, DICOM modality codes, default validity days, min level,
# price plain, price with contrast (None: no contrast variant)
MODALITIES = [
    ("DX", "IMG-DR", "数字X线摄影", "Digital radiography", ("DX", "CR", "DR"), 30, 1, 80, None),
    ("CT", "IMG-CT", "计算机断层扫描", "Computed tomography", ("CT",), 90, 2, 260, 620),
    ("MR", "IMG-MR", "磁共振成像", "Magnetic resonance imaging", ("MR",), 90, 2, 580, 980),
    ("US", "IMG-US", "超声检查", "Ultrasound", ("US",), 14, 1, 120, None),
    ("MG", "IMG-MG", "乳腺X线摄影", "Mammography", ("MG",), 180, 2, 180, None),
]

# body site code, DICOM BodyPartExamined, Chinese, English, modalities offered
BODY_SITES = [
    ("HEAD", "HEAD", "头颅", "Head", "DX CT MR"),
    ("BRAIN", "BRAIN", "颅脑", "Brain", "CT MR"),
    ("SINUS", "SINUS", "鼻窦", "Paranasal sinuses", "DX CT MR"),
    ("ORBIT", "ORBIT", "眼眶", "Orbit", "CT MR"),
    ("TBONE", "TBONE", "颞骨", "Temporal bone", "CT MR"),
    ("NECK", "NECK", "颈部", "Neck", "CT MR US"),
    ("THYROID", "THYROID", "甲状腺", "Thyroid", "US CT"),
    ("CHEST", "CHEST", "胸部", "Chest", "DX CT MR"),
    ("LUNG", "LUNG", "肺部", "Lung", "CT"),
    ("HEART", "HEART", "心脏", "Heart", "CT MR US"),
    ("CORONARY", "HEART", "冠状动脉", "Coronary arteries", "CT"),
    ("BREAST", "BREAST", "乳腺", "Breast", "MR US MG"),
    ("ABDOMEN", "ABDOMEN", "腹部", "Abdomen", "DX CT MR US"),
    ("UPPERABD", "ABDOMEN", "上腹部", "Upper abdomen", "CT MR"),
    ("LIVER", "LIVER", "肝脏", "Liver", "CT MR US"),
    ("GALLBLADDER", "GALLBLADDER", "胆囊", "Gallbladder", "US"),
    ("PANCREAS", "PANCREAS", "胰腺", "Pancreas", "CT MR US"),
    ("KIDNEY", "KIDNEY", "肾脏", "Kidney", "CT MR US"),
    ("PELVIS", "PELVIS", "盆腔", "Pelvis", "DX CT MR US"),
    ("PROSTATE", "PROSTATE", "前列腺", "Prostate", "MR US"),
    ("UTERUS", "UTERUS", "子宫附件", "Uterus and adnexa", "US MR"),
    ("CSPINE", "CSPINE", "颈椎", "Cervical spine", "DX CT MR"),
    ("TSPINE", "TSPINE", "胸椎", "Thoracic spine", "DX CT MR"),
    ("LSPINE", "LSPINE", "腰椎", "Lumbar spine", "DX CT MR"),
    ("SHOULDER", "SHOULDER", "肩关节", "Shoulder", "DX CT MR"),
    ("ELBOW", "ELBOW", "肘关节", "Elbow", "DX CT MR"),
    ("WRIST", "WRIST", "腕关节", "Wrist", "DX CT MR"),
    ("HAND", "HAND", "手", "Hand", "DX"),
    ("HIP", "HIP", "髋关节", "Hip", "DX CT MR"),
    ("KNEE", "KNEE", "膝关节", "Knee", "DX CT MR"),
    ("ANKLE", "ANKLE", "踝关节", "Ankle", "DX CT MR"),
    ("FOOT", "FOOT", "足", "Foot", "DX"),
    ("CAROTID", "NECK", "颈部血管", "Carotid arteries", "US CT"),
    ("LOWEREXT", "LEG", "下肢血管", "Lower limb vessels", "US CT"),
    ("SKULL", "SKULL", "颅骨", "Skull", "DX"),
    ("RIBS", "RIBS", "肋骨", "Ribs", "DX CT"),
    ("CLAVICLE", "CLAVICLE", "锁骨", "Clavicle", "DX"),
    ("HUMERUS", "ARM", "肱骨", "Humerus", "DX"),
    ("FOREARM", "ARM", "尺桡骨", "Forearm", "DX"),
    ("FEMUR", "LEG", "股骨", "Femur", "DX"),
    ("TIBIA", "LEG", "胫腓骨", "Tibia and fibula", "DX"),
    ("CALCANEUS", "FOOT", "跟骨", "Calcaneus", "DX"),
    ("SACRUM", "SSPINE", "骶尾椎", "Sacrum and coccyx", "DX CT"),
    ("URINARY", "KIDNEY", "泌尿系", "Urinary tract", "US"),
    ("LYMPH", "NECK", "浅表淋巴结", "Superficial lymph nodes", "US"),
    ("SPLEEN", "ABDOMEN", "脾脏", "Spleen", "US"),
    ("ADRENAL", "ABDOMEN", "肾上腺", "Adrenal glands", "CT"),
]

# Special imaging items that are not modality x body site (code, sub-category, Chinese, English,
# DICOM modality, DICOM BodyPartExamined, contrast, validity days, min level, price)
SPECIAL_IMAGING = [
    ("CT-HEADNECK-CTA", "IMG-CT", "头颈部CT血管成像", "CT angiography head and neck", "CT", "HEADNECK", True, 90, 2, 900),
    ("CT-AORTA-CTA", "IMG-CT", "主动脉CT血管成像", "CT angiography aorta", "CT", "AORTA", True, 90, 2, 900),
    ("CT-PULMONARY-CTA", "IMG-CT", "肺动脉CT血管成像", "CT angiography pulmonary arteries", "CT", "CHEST", True, 90, 2,
     900),
    ("CT-LOWDOSE-CHEST", "IMG-CT", "低剂量胸部CT", "Low-dose chest CT", "CT", "CHEST", False, 180, 2, 200),
    ("MR-HEAD-MRA", "IMG-MR", "头颅磁共振血管成像", "MR angiography head", "MR", "HEAD", False, 90, 2, 600),
    ("MR-MRCP", "IMG-MR", "磁共振胰胆管成像", "MR cholangiopancreatography", "MR", "ABDOMEN", False, 90, 2, 600),
    ("MR-HEAD-DWI", "IMG-MR", "颅脑磁共振弥散加权成像", "MR diffusion-weighted imaging brain", "MR", "BRAIN", False,
     30, 2, 400),
    ("US-ECHO", "IMG-US", "经胸超声心动图", "Transthoracic echocardiography", "US", "HEART", False, 90, 2, 220),
    ("US-LOWERVEIN", "IMG-US", "下肢静脉超声", "Ultrasound lower limb veins", "US", "LEG", False, 14, 1, 150),
    ("US-OBSTETRIC", "IMG-US", "产科超声", "Obstetric ultrasound", "US", "PELVIS", False, 7, 1, 150),
    ("DX-CHEST-LAT", "IMG-DR", "胸部正侧位", "Chest PA and lateral", "DX", "CHEST", False, 30, 1, 120),
    ("DX-LSPINE-FLEX", "IMG-DR", "腰椎过伸过屈位", "Lumbar spine flexion-extension", "DX", "LSPINE", False, 30, 1, 120),
]

# LOINC codes of imaging items: (modality, body site, contrast) -> LOINC. The five in CHECKED_LOINC are checked in
# the domain notes; the others are LOINC radiology terms (LOINC/RSNA Radiology Playbook naming) matched to the item
# by the term's long common name: plain (平扫) = "WO contrast", contrast (增强) = "WO and W contrast IV" (a Chinese
# enhanced scan includes its plain phase) or "W contrast IV" where LOINC has no combined term. Items without a term
# of the same meaning (CT brain beside CT head, upper abdomen, rib CT, township lymph node ultrasound...) stay unmapped.
IMAGING_LOINC = {
    ("DX", "CHEST", False): "36643-5", ("CT", "CHEST", False): "24627-2", ("CT", "HEAD", False): "30799-1",
    ("MR", "BRAIN", False): "24590-2", ("CT", "ABDOMEN", False): "41806-1",
    # radiography
    ("DX", "SINUS", False): "24916-9", ("DX", "ABDOMEN", False): "36550-2", ("DX", "PELVIS", False): "28561-9",
    ("DX", "CSPINE", False): "24946-6", ("DX", "TSPINE", False): "24983-9", ("DX", "LSPINE", False): "24972-2",
    ("DX", "SHOULDER", False): "24909-4", ("DX", "ELBOW", False): "24676-9", ("DX", "WRIST", False): "24619-9",
    ("DX", "HAND", False): "28582-5", ("DX", "HIP", False): "24762-7", ("DX", "KNEE", False): "28565-0",
    ("DX", "ANKLE", False): "24541-5", ("DX", "FOOT", False): "24709-8", ("DX", "SKULL", False): "28564-3",
    ("DX", "RIBS", False): "24899-7", ("DX", "CLAVICLE", False): "24664-5", ("DX", "HUMERUS", False): "28567-6",
    ("DX", "FOREARM", False): "24891-4", ("DX", "FEMUR", False): "24704-9", ("DX", "TIBIA", False): "25011-8",
    ("DX", "CALCANEUS", False): "24612-4", ("DX", "SACRUM", False): "24665-2",
    # CT
    ("CT", "HEAD", True): "24726-2", ("CT", "SINUS", False): "36529-6", ("CT", "SINUS", True): "36398-6",
    ("CT", "ORBIT", False): "30587-0", ("CT", "ORBIT", True): "24849-2", ("CT", "TBONE", False): "30589-6",
    ("CT", "TBONE", True): "24878-1", ("CT", "NECK", False): "36514-8", ("CT", "NECK", True): "30586-2",
    ("CT", "CHEST", True): "30598-7", ("CT", "HEART", False): "58744-4", ("CT", "CORONARY", False): "79087-3",
    ("CT", "ABDOMEN", True): "36267-3", ("CT", "LIVER", False): "30611-8", ("CT", "LIVER", True): "30612-6",
    ("CT", "PANCREAS", False): "30613-4", ("CT", "PANCREAS", True): "30614-2", ("CT", "KIDNEY", False): "36503-1",
    ("CT", "KIDNEY", True): "36377-0", ("CT", "PELVIS", False): "30615-9", ("CT", "PELVIS", True): "30616-7",
    ("CT", "CSPINE", False): "30592-0", ("CT", "CSPINE", True): "36401-8", ("CT", "TSPINE", False): "30597-9",
    ("CT", "TSPINE", True): "36403-4", ("CT", "LSPINE", False): "30620-9", ("CT", "LSPINE", True): "36402-6",
    ("CT", "SHOULDER", False): "36524-7", ("CT", "SHOULDER", True): "36395-2", ("CT", "ELBOW", False): "36443-0",
    ("CT", "ELBOW", True): "36285-5", ("CT", "HIP", False): "36484-4", ("CT", "HIP", True): "36359-8",
    ("CT", "KNEE", False): "36505-6", ("CT", "KNEE", True): "36379-6", ("CT", "ANKLE", False): "36425-7",
    ("CT", "ANKLE", True): "36268-1", ("CT", "CAROTID", True): "30594-6", ("CT", "LOWEREXT", True): "30807-2",
    ("CT", "SACRUM", False): "36520-5", ("CT", "SACRUM", True): "36390-3",
    # MR
    ("MR", "BRAIN", True): "24587-8", ("MR", "SINUS", False): "30662-1", ("MR", "SINUS", True): "30663-9",
    ("MR", "ORBIT", False): "30661-3", ("MR", "ORBIT", True): "24851-8", ("MR", "NECK", False): "30660-5",
    ("MR", "NECK", True): "24840-1", ("MR", "CHEST", False): "36442-2", ("MR", "CHEST", True): "36283-0",
    ("MR", "HEART", False): "36482-8", ("MR", "HEART", True): "36357-2", ("MR", "BREAST", False): "36436-4",
    ("MR", "BREAST", True): "36276-4", ("MR", "ABDOMEN", False): "30668-8", ("MR", "ABDOMEN", True): "24557-1",
    ("MR", "LIVER", False): "30669-6", ("MR", "LIVER", True): "30670-4", ("MR", "PANCREAS", False): "36515-5",
    ("MR", "PANCREAS", True): "36385-3", ("MR", "KIDNEY", False): "36504-9", ("MR", "KIDNEY", True): "36378-8",
    ("MR", "PELVIS", False): "30673-8", ("MR", "PELVIS", True): "30674-6", ("MR", "PROSTATE", False): "36519-7",
    ("MR", "PROSTATE", True): "36389-5", ("MR", "UTERUS", False): "36542-9", ("MR", "UTERUS", True): "36413-3",
    ("MR", "CSPINE", False): "30667-0", ("MR", "CSPINE", True): "24937-5", ("MR", "TSPINE", False): "36532-0",
    ("MR", "TSPINE", True): "24981-3", ("MR", "LSPINE", False): "30679-5", ("MR", "LSPINE", True): "24967-2",
    ("MR", "SHOULDER", False): "30693-6", ("MR", "SHOULDER", True): "24906-0", ("MR", "ELBOW", False): "30796-7",
    ("MR", "ELBOW", True): "24675-1", ("MR", "WRIST", False): "25033-2", ("MR", "WRIST", True): "25035-7",
    ("MR", "HIP", False): "30687-8", ("MR", "HIP", True): "30688-6", ("MR", "KNEE", False): "30691-0",
    ("MR", "KNEE", True): "24803-9", ("MR", "ANKLE", False): "30680-3", ("MR", "ANKLE", True): "24539-9",
    # ultrasound and mammography
    ("US", "NECK", False): "24842-7", ("US", "THYROID", False): "25010-0", ("US", "BREAST", False): "24601-7",
    ("US", "ABDOMEN", False): "24558-9", ("US", "LIVER", False): "28614-6", ("US", "GALLBLADDER", False): "24711-4",
    ("US", "PANCREAS", False): "24859-1", ("US", "PELVIS", False): "24869-0", ("US", "UTERUS", False): "30705-8",
    ("US", "CAROTID", False): "24616-5", ("US", "SPLEEN", False): "24990-4", ("MG", "BREAST", False): "36625-2",
}
# LOINC codes of the special imaging items (item code -> LOINC), matched the same way.
SPECIAL_LOINC = {"DX-CHEST-LAT": "24647-0", "DX-LSPINE-FLEX": "24971-4", "CT-AORTA-CTA": "36141-0",
                 "CT-PULMONARY-CTA": "36147-7", "MR-HEAD-MRA": "30856-9", "US-LOWERVEIN": "30881-7",
                 "US-OBSTETRIC": "11525-3"}

# -- other categories -------------------------------------------------------------------------------------
OTHER_ITEMS = [
    ("ECG", "ECG-REST", "常规心电图", "Resting 12-lead ECG", "", 7, 1, 25),
    ("ECG", "ECG-HOLTER", "动态心电图", "Holter ECG 24h", "", 30, 2, 150),
    ("ECG", "ECG-EXERCISE", "运动平板心电图", "Exercise ECG", "", 30, 2, 200),
    ("PATH", "PATH-CYTO-CERVIX", "宫颈细胞学检查", "Cervical cytology", "", 365, 2, 120),
    ("PATH", "PATH-HISTO", "组织病理检查", "Histopathology", "", 3650, 2, 300),
]

# -- scopes ----------------------------------------------------------------------------------------------
REGIONS = [
    ("110000", "北京市", "Beijing"), ("120000", "天津市", "Tianjin"), ("130000", "河北省", "Hebei"),
    ("140000", "山西省", "Shanxi"), ("360000", "江西省", "Jiangxi"), ("360482", "共青城市", "Gongqingcheng"),
    ("430000", "湖南省", "Hunan"), ("430700", "常德市", "Changde"), ("500000", "重庆市", "Chongqing"),
    ("510000", "四川省", "Sichuan"), ("510100", "成都市", "Chengdu"), ("510700", "绵阳市", "Mianyang"),
    ("511700", "达州市", "Dazhou"), ("520000", "贵州省", "Guizhou"), ("520100", "贵阳市", "Guiyang"),
]

# Demo hospitals and the first letters of their local code schemes.
HOSPITALS = [
    ("hospital-a", "四川省示范人民医院", "Sichuan demo people's hospital", "510100", "JY", "YX"),
    ("hospital-b", "重庆市示范中心医院", "Chongqing demo central hospital", "500000", "LAB", "RIS"),
    ("hospital-c", "贵阳市示范第一医院", "Guiyang demo first hospital", "520100", "L", "P"),
]
